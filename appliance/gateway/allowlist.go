package gateway

import (
	"fmt"
	"sort"

	"github.com/cmg-gateway/cmg/tunnel"
)

// allowedRole is one role the gateway may route.
type allowedRole struct {
	ID   string
	Kind tunnel.RoleKind
	Site string
	// kindIdx indexes per-role-kind metric arrays.
	kindIdx int
}

// allowList is the per-site allow-list of DESIGN section 3, built from the
// configuration. It is immutable; a reload builds a new one.
type allowList struct {
	roles      map[string]*allowedRole    // by RoleID
	connectors map[string]map[string]bool // site → connector names
	// tokenSites maps the `site` claim of a site token (the site's code, or its
	// name when it has none) to the allow-list site.
	tokenSites map[string]string
}

func newAllowList(sites []SiteConfig) *allowList {
	a := &allowList{roles: map[string]*allowedRole{}, connectors: map[string]map[string]bool{}, tokenSites: map[string]string{}}
	for _, s := range sites {
		code := s.Code
		if code == "" {
			code = s.Name
		}
		a.tokenSites[code] = s.Name
		names := map[string]bool{}
		for _, c := range s.Connectors {
			names[c] = true
		}
		a.connectors[s.Name] = names
		for _, r := range s.Roles {
			a.roles[r.ID] = &allowedRole{ID: r.ID, Kind: r.Kind, Site: s.Name, kindIdx: kindIndex(r.Kind)}
		}
	}
	return a
}

// AllowConnector implements tunnel.AllowList.
func (a *allowList) AllowConnector(site, name string) error {
	if !a.connectors[site][name] {
		return fmt.Errorf("connector %s/%s is not in the gateway's allow-list", site, name)
	}
	return nil
}

// AllowRoute implements tunnel.AllowList: the role must be listed under the
// connector's own site with the same kind.
func (a *allowList) AllowRoute(site, name string, r tunnel.Route) error {
	role := a.roles[r.RoleID]
	switch {
	case role == nil:
		return fmt.Errorf("role %s is not in the allow-list", r.RoleID)
	case role.Site != site:
		return fmt.Errorf("role %s belongs to site %s, not %s", r.RoleID, role.Site, site)
	case role.Kind != r.Kind:
		return fmt.Errorf("role %s is a %s, not a %s", r.RoleID, role.Kind, r.Kind)
	}
	return nil
}

// tokenSite returns the allow-list site a site token's `site` claim names.
func (a *allowList) tokenSite(claim string) (string, bool) {
	site, ok := a.tokenSites[claim]
	return site, ok
}

// role returns the allowed role with the RoleID, or nil.
func (a *allowList) role(id string) *allowedRole { return a.roles[id] }

// known lists every allowed connector.
func (a *allowList) known() []tunnel.ConnectorRef {
	var out []tunnel.ConnectorRef
	for site, names := range a.connectors {
		for n := range names {
			out = append(out, tunnel.ConnectorRef{Site: site, Name: n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Site != out[j].Site {
			return out[i].Site < out[j].Site
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// roleKindLabels are the role label values, indexed by kindIndex; "none" is for
// requests that reached no role.
var roleKindLabels = [numRoleLabels]string{
	string(tunnel.ManagementPoint),
	string(tunnel.SoftwareUpdatePoint),
	string(tunnel.DistributionPoint),
	"none",
}

const (
	noRole        = 3
	numRoleLabels = 4
)

func kindIndex(k tunnel.RoleKind) int {
	for i, l := range roleKindLabels[:noRole] {
		if l == string(k) {
			return i
		}
	}
	return noRole
}
