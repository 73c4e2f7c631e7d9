{{/* The release's base name: the release name, with the chart name unless it is in it already. */}}
{{- define "cmg.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cmg.gateway" -}}{{ include "cmg.fullname" . }}-gateway{{- end -}}
{{- define "cmg.connector" -}}{{ include "cmg.fullname" . }}-connector{{- end -}}

{{/* Labels every object carries. */}}
{{- define "cmg.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component (gateway or connector): include with (list $ "gateway"). */}}
{{- define "cmg.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ $.Chart.Name }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "cmg.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The gateway configuration file. */}}
{{- define "cmg.gatewayConfig" -}}
{{- $cfg := deepCopy .Values.gateway.config -}}
{{- $_ := set $cfg "instances" (int .Values.gateway.instances) -}}
{{- $_ := set $cfg "instance" 0 -}}
{{- if .Values.gateway.policy -}}
{{- $_ := set $cfg "policy" (merge (dict "file" "/etc/cmg/config/policy.yaml") (deepCopy ($cfg.policy | default dict))) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The configuration file of connector pod j: include with (list $ j). */}}
{{- define "cmg.connectorConfig" -}}
{{- $ := index . 0 -}}
{{- $name := printf "%s-%d" (include "cmg.connector" $) (index . 1) -}}
{{- $cfg := deepCopy $.Values.connector.config -}}
{{- $_ := set $cfg "name" $name -}}
{{- $_ := set $cfg "tls" (dict "cert_file" (printf "/etc/cmg/tls/%s.pem" $name) "key_file" (printf "/etc/cmg/tls/%s-key.pem" $name)) -}}
{{- $gw := deepCopy $cfg.gateway -}}
{{- $_ := set $gw "instances" (int $.Values.gateway.instances) -}}
{{- $_ := set $cfg "gateway" $gw -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Pod security settings shared by both components. */}}
{{- define "cmg.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "cmg.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}
