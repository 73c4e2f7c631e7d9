package roles

// The kinds of exchange the server counts (Stats.Kinds). A fixed list keeps the
// counters lock-free and the JSON bounded.
const (
	kindHealth = "health"
	kindStats  = "stats"
	kindEcho   = "helper.echo"
	kindBlob   = "helper.blob"
	kindSink   = "helper.sink"
	kindStatus = "helper.status"
	kindOther  = "not_found"

	kindMPList        = "mp.mplist"
	kindMPCert        = "mp.cert"
	kindRegistration  = "mp.registration"
	kindLocation      = "mp.location"
	kindWSUSLocation  = "mp.wsus_location"
	kindAssignments   = "mp.policy_assignments"
	kindPolicyBody    = "mp.policy_body"
	kindCIDocument    = "mp.ci_document"
	kindStateMessage  = "mp.state_message"
	kindStatusMessage = "mp.status_message"
	kindDDR           = "mp.ddr"
	kindHINV          = "mp.hinv"
	kindSINV          = "mp.sinv"
	kindOtherMessage  = "mp.other_message"
	kindBadMessage    = "mp.bad_message"
	kindCCMToken      = "mp.ccm_sts"
	kindBITSCreate    = "mp.bits_create_session"
	kindBITSFragment  = "mp.bits_fragment"
	kindBITSClose     = "mp.bits_close_session"
	kindBITSCancel    = "mp.bits_cancel_session"
	kindBITSPing      = "mp.bits_ping"
	kindBITSError     = "mp.bits_error"
	kindPropfind      = "mp.propfind"
	kindNotification  = "mp.notification"
	kindSUPGetConfig  = "sup.get_config"
	kindSUPAuthCookie = "sup.get_authorization_cookie"
	kindSUPGetCookie  = "sup.get_cookie"
	kindSUPRegister   = "sup.register_computer"
	kindSUPSync       = "sup.sync_updates"
	kindSUPExtended   = "sup.get_extended_update_info"
	kindSUPFiles      = "sup.get_file_locations"
	kindSUPReport     = "sup.report_event_batch"
	kindSUPOther      = "sup.other_soap"
	kindSUPSelfUpdate = "sup.self_update"
	kindSUPContent    = "sup.content"
	kindSUPPropfind   = "sup.propfind"
	kindContentToken  = "mp.content_token"
	kindDPManifest    = "dp.manifest"
	kindDPFile        = "dp.file"
)

var allKinds = []string{
	kindHealth, kindStats, kindEcho, kindBlob, kindSink, kindStatus, kindOther,
	kindMPList, kindMPCert, kindRegistration, kindLocation, kindWSUSLocation, kindAssignments,
	kindPolicyBody, kindCIDocument, kindStateMessage, kindStatusMessage, kindDDR, kindHINV,
	kindSINV, kindOtherMessage, kindBadMessage, kindCCMToken, kindBITSCreate, kindBITSFragment,
	kindBITSClose, kindBITSCancel, kindBITSPing, kindBITSError, kindPropfind, kindNotification,
	kindSUPGetConfig, kindSUPAuthCookie, kindSUPGetCookie, kindSUPRegister, kindSUPSync,
	kindSUPExtended, kindSUPFiles, kindSUPReport, kindSUPOther, kindSUPSelfUpdate,
	kindSUPContent, kindSUPPropfind, kindContentToken, kindDPManifest, kindDPFile,
}
