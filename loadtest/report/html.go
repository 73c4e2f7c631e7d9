package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"strings"
)

// WriteHTML writes the report as one self-contained page: the figures as
// tables, and latency-over-time and throughput plots drawn as inline SVG by a
// small inline script from the report's JSON (no external resource: it opens
// on a machine without internet).
func (r *Report) WriteHTML(w io.Writer) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var text strings.Builder
	r.WriteText(&text)
	return pageTmpl.Execute(w, struct {
		R    *Report
		JSON template.JS
		Text string
		Mon  string
	}{r, template.JS(data), text.String(), monthly(r)})
}

func monthly(r *Report) string {
	if r.Egress.MonthlyTotal == nil {
		return MB(r.Egress.MonthlyDevice) + " (device leg only)"
	}
	s := MB(*r.Egress.MonthlyTotal)
	if r.Egress.Reference > 0 {
		s += fmt.Sprintf(" (reference %s, %s)", MB(r.Egress.Reference), pct(r.Egress.VsReference))
	}
	return s
}

// ReadJSON reads a report written with -json.
func ReadJSON(path string) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r Report
	if err := json.NewDecoder(f).Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>cmg loadtest: {{.R.Profile}}, {{.R.Habits}} habits, {{.R.Devices}} devices</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5a6272;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 14px;min-width:170px}
.card b{display:block;font-size:20px;margin-top:2px}
table{border-collapse:collapse;background:#fff;font-size:13px}
td,th{border:1px solid #dde1e7;padding:4px 8px;text-align:right} th{background:#f0f2f5} td:first-child,th:first-child{text-align:left}
svg.plot{background:#fff;border:1px solid #dde1e7;border-radius:6px}
svg text{font-size:11px;fill:#5a6272}
pre{background:#fff;border:1px solid #dde1e7;padding:10px;font-size:12px;overflow:auto}
</style></head><body>
<h1>cmg loadtest: {{.R.Devices}} devices, profile {{.R.Profile}}, {{.R.Habits}} habits</h1>
<div class="sub">{{.R.Started.Format "2006-01-02 15:04:05 MST"}}, {{printf "%.0f" .R.WallSeconds}} s wall, time scale {{.R.TimeScale}}, {{.R.Auth}} auth, {{.R.Identity}}</div>
<div class="cards">
<div class="card">exchanges<b>{{.R.Throughput.Exchanges}}</b></div>
<div class="card">per second (wall)<b>{{printf "%.1f" .R.Throughput.PerSecond}}</b></div>
<div class="card">errors<b>{{.R.Throughput.Errors}}</b></div>
<div class="card">egress per device per month<b>{{.Mon}}</b></div>
</div>
<h2>Latency over time</h2>
<svg id="latency" class="plot" width="960" height="320" role="img" aria-label="latency over time"></svg>
<h2>Throughput over time</h2>
<svg id="throughput" class="plot" width="960" height="280" role="img" aria-label="throughput over time"></svg>
<h2>Latency by role (ms)</h2>
<table><tr><th>role</th><th>count</th><th>errors</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>
{{range $role, $s := .R.Roles}}<tr><td>{{$role}}</td><td>{{$s.Count}}</td><td>{{$s.Errors}}</td><td>{{$s.P50MS}}</td><td>{{$s.P95MS}}</td><td>{{$s.P99MS}}</td><td>{{$s.MaxMS}}</td></tr>
{{end}}</table>
<h2>Errors by reason</h2>
<table><tr><th>reason</th><th>count</th></tr>
{{range $k, $v := .R.Errors}}<tr><td>{{$k}}</td><td>{{$v}}</td></tr>
{{else}}<tr><td>none</td><td>0</td></tr>{{end}}</table>
<h2>The whole report</h2>
<pre>{{.Text}}</pre>
<script id="report-data" type="application/json">{{.JSON}}</script>
<script>
(function(){
var R = JSON.parse(document.getElementById('report-data').textContent);
var NS = 'http://www.w3.org/2000/svg';
var colors = {management_point:'#2f6fdf', software_update_point:'#e07b24', distribution_point:'#2a9d5c', errors:'#d43c3c'};
function el(n, a, p){var e=document.createElementNS(NS,n);for(var k in a)e.setAttribute(k,a[k]);if(p)p.appendChild(e);return e;}
function nice(v){if(v<=0)return 1;var p=Math.pow(10,Math.floor(Math.log10(v)));var m=v/p;return (m<=1?1:m<=2?2:m<=5?5:10)*p;}
function plot(id, series, ylabel){
  var svg=document.getElementById(id), W=+svg.getAttribute('width'), H=+svg.getAttribute('height');
  var L=60,Rm=170,T=14,B=36, w=W-L-Rm, h=H-T-B;
  var xmax=0, ymax=0;
  series.forEach(function(s){s.points.forEach(function(p){xmax=Math.max(xmax,p[0]);ymax=Math.max(ymax,p[1]);});});
  xmax=xmax||1; ymax=nice(ymax*1.05);
  var X=function(x){return L+x/xmax*w;}, Y=function(y){return T+h-y/ymax*h;};
  for(var i=0;i<=4;i++){var yv=ymax*i/4;
    el('line',{x1:L,x2:L+w,y1:Y(yv),y2:Y(yv),stroke:'#eceff3'},svg);
    el('text',{x:L-6,y:Y(yv)+4,'text-anchor':'end'},svg).textContent=(yv>=100?yv.toFixed(0):yv.toPrecision(2));}
  for(var j=0;j<=5;j++){var xv=xmax*j/5;
    el('text',{x:X(xv),y:T+h+16,'text-anchor':'middle'},svg).textContent=xv.toFixed(0)+' s';}
  el('line',{x1:L,x2:L,y1:T,y2:T+h,stroke:'#9aa3b0'},svg); el('line',{x1:L,x2:L+w,y1:T+h,y2:T+h,stroke:'#9aa3b0'},svg);
  el('text',{x:14,y:T+h/2,transform:'rotate(-90 14 '+(T+h/2)+')','text-anchor':'middle'},svg).textContent=ylabel;
  el('text',{x:L+w/2,y:H-4,'text-anchor':'middle'},svg).textContent='wall time since start';
  series.forEach(function(s,k){
    if(!s.points.length)return;
    var d=s.points.map(function(p,i){return (i?'L':'M')+X(p[0]).toFixed(1)+','+Y(p[1]).toFixed(1);}).join(' ');
    el('path',{d:d,fill:'none',stroke:s.color,'stroke-width':1.6,'stroke-dasharray':s.dash||'','class':'series','data-name':s.name,'data-points':s.points.length},svg);
    el('line',{x1:L+w+12,x2:L+w+32,y1:T+12+k*16,y2:T+12+k*16,stroke:s.color,'stroke-width':2,'stroke-dasharray':s.dash||''},svg);
    el('text',{x:L+w+36,y:T+16+k*16},svg).textContent=s.name;
  });
}
var pts=(R.timeline&&R.timeline.points)||[], bs=(R.timeline&&R.timeline.bucket_seconds)||1;
var roles={}; pts.forEach(function(p){Object.keys(p.exchanges||{}).forEach(function(r){roles[r]=1;});});
var lat=[], thr=[];
Object.keys(roles).sort().forEach(function(r){
  var short=r==='management_point'?'MP':r==='software_update_point'?'SUP':r;
  [['p50','p50_ms','4 3'],['p99','p99_ms','']].forEach(function(q){
    lat.push({name:short+' '+q[0],color:colors[r]||'#555',dash:q[2],points:pts.filter(function(p){return p[q[1]]&&p[q[1]][r]!==undefined;}).map(function(p){return [p.t,p[q[1]][r]];})});
  });
  thr.push({name:short+' /s',color:colors[r]||'#555',points:pts.map(function(p){return [p.t,((p.exchanges||{})[r]||0)/bs];})});
});
thr.push({name:'errors /s',color:colors.errors,dash:'2 2',points:pts.map(function(p){return [p.t,(p.errors||0)/bs];})});
plot('latency',lat,'latency (ms)');
plot('throughput',thr,'exchanges per second');
document.body.setAttribute('data-plots','drawn');
})();
</script>
</body></html>
`))
