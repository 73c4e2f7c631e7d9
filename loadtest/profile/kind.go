package profile

import "sort"

// Kind is the exchange a class performs: which requests the device builds and
// which role answers them.
type Kind string

// The kinds. Each is one kind of exchange of a Configuration Manager client
// (client-traffic.md sections 1 to 3); loadtest/device builds its requests.
const (
	KindMachinePolicy       Kind = "machine_policy"       // CCM_POST RequestAssignments (Machine), Sync
	KindUserPolicy          Kind = "user_policy"          // CCM_POST RequestAssignments (User), Sync
	KindNotificationRenewal Kind = "notification_renewal" // /bgb/handler.ashx keep-alive, a plain request
	KindNotificationChannel Kind = "notification_channel" // cmg's SSE channel: extension point, not simulated yet
	KindStateMessage        Kind = "state_message"        // async Report "State Message Data"
	KindStatusMessage       Kind = "status_message"       // async Report "Status Message Data"
	KindCCMToken            Kind = "ccm_token"            // POST /CCM_STS
	KindLocation            Kind = "location"             // MP list, certificates and a LocationRequest
	KindWSUSLocation        Kind = "wsus_location"        // CCM_POST WSUSLocationRequest
	KindPolicyBody          Kind = "policy_body"          // GET /SMS_MP/.sms_pol
	KindCIDocument          Kind = "ci_document"          // GET /SMS_MP/.sms_dcm
	KindSUPScan             Kind = "sup_scan"             // GetCookie, SyncUpdates..., SyncUpdates (drivers)
	KindSUPMetadata         Kind = "sup_metadata"         // GetExtendedUpdateInfo calls
	KindWUAReport           Kind = "wua_report"           // ReportEventBatch
	KindBITSUpload          Kind = "bits_upload"          // BITS_POST Create-Session, Fragment..., Close-Session
	KindDDR                 Kind = "ddr"                  // async Report, heartbeat discovery
	KindMetering            Kind = "metering"             // async Report, software metering
	KindScriptResult        Kind = "script_result"        // async result of a CMPivot query or script
	KindAppList             Kind = "app_list"             // Software Center's application documents
	KindContentDownload     Kind = "content_download"     // ranged GETs of content: extension point, not simulated yet
)

// Roles a kind addresses (the gateway's role kinds).
const (
	RoleMP  = "management_point"
	RoleSUP = "software_update_point"
	RoleDP  = "distribution_point"
)

type kindInfo struct {
	role      string
	minX      int // exchanges per occurrence
	maxX      int
	simulated bool
}

var kinds = map[Kind]kindInfo{
	KindMachinePolicy:       {RoleMP, 1, 1, true},
	KindUserPolicy:          {RoleMP, 1, 1, true},
	KindNotificationRenewal: {RoleMP, 1, 1, true},
	KindNotificationChannel: {RoleMP, 1, 1, false},
	KindStateMessage:        {RoleMP, 1, 1, true},
	KindStatusMessage:       {RoleMP, 1, 1, true},
	KindCCMToken:            {RoleMP, 1, 1, true},
	KindLocation:            {RoleMP, 4, 4, true},
	KindWSUSLocation:        {RoleMP, 1, 1, true},
	KindPolicyBody:          {RoleMP, 1, 100, true},
	KindCIDocument:          {RoleMP, 1, 100, true},
	KindSUPScan:             {RoleSUP, 3, 50, true},
	KindSUPMetadata:         {RoleSUP, 1, 500, true},
	KindWUAReport:           {RoleSUP, 1, 1, true},
	KindBITSUpload:          {RoleMP, 3, 1000, true},
	KindDDR:                 {RoleMP, 1, 1, true},
	KindMetering:            {RoleMP, 1, 1, true},
	KindScriptResult:        {RoleMP, 1, 1, true},
	KindAppList:             {RoleMP, 1, 100, true},
	KindContentDownload:     {RoleDP, 1, 1000, false},
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { _, ok := kinds[k]; return ok }

// Role is the role kind the exchange addresses.
func (k Kind) Role() string { return kinds[k].role }

// Simulated reports whether the load tester runs this kind yet. The
// notification channel and content downloads come with the gateway's
// /cmg/v1/notifications and /cmg/v1/content: until then they are priced by the
// model only.
func (k Kind) Simulated() bool { return kinds[k].simulated }

func (k Kind) exchanges() (lo, hi int) { i := kinds[k]; return i.minX, i.maxX }

func kindNames() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}
