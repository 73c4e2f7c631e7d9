package roles

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cmg-gateway/cmg/sitetoken"
)

// The gateway's verified-identity headers that CCM_STS reads (the gateway strips
// any a device sends; see appliance/gateway/headers.go).
const (
	headerAuthMethod = "Cmg-Auth-Method"
	headerDeviceID   = "Cmg-Device-Id"
)

// SiteTokenIssuer makes CCM_STS hand out real site device tokens (the one
// format of package sitetoken, which the gateway verifies), as the management
// point of the original product does for token devices:
//
//   - a device that presents a bulk registration token in the body (it came
//     through the gateway with that token) registers: it gets a device token
//     for the identity in its CCMClientID header;
//   - a device that presents its device token renews it: a fresh device token
//     for the same subject;
//   - any other device the gateway authenticated (client certificate, Azure
//     AD) gets a device token for its verified identity.
//
// Tokens in the body must be the site's own and valid; a request that did not
// come through the gateway (no verified identity) is refused.
func SiteTokenIssuer(iss *sitetoken.Issuer, pub *sitetoken.Key) (TokenIssuer, error) {
	if iss == nil || pub == nil {
		return nil, errors.New("roles: site token issuer needs the site key")
	}
	ver, err := sitetoken.NewVerifier([]sitetoken.Key{*pub}, sitetoken.VerifyOptions{Leeway: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	return func(_ context.Context, req TokenRequest) (string, time.Duration, error) {
		if req.Header.Get(headerAuthMethod) == "" {
			return "", 0, errors.New("no identity verified by the gateway")
		}
		subject := req.Header.Get(headerDeviceID)
		// A device the gateway verified by certificate or Azure AD is who the
		// gateway says; only a site-token device proves itself with the
		// token it presents (raw, or as the "token" of a JSON body).
		method := req.Header.Get(headerAuthMethod)
		if body := presentedToken(req.Body); len(body) > 0 && method != "certificate" && method != "oidc" {
			c, err := ver.Verify(string(body), sitetoken.Device, sitetoken.Registration)
			if err != nil {
				return "", 0, fmt.Errorf("presented token: %w", err)
			}
			subject = c.Subject
			if c.Kind == sitetoken.Registration {
				subject = strings.TrimSpace(req.Header.Get("CCMClientID"))
				if subject == "" {
					return "", 0, errors.New("registration needs the device's CCMClientID")
				}
			}
		}
		if subject == "" {
			return "", 0, errors.New("no device identity")
		}
		tok, err := iss.Issue(sitetoken.Device, subject, sitetoken.Options{})
		return tok, sitetoken.DefaultDeviceTTL, err
	}, nil
}

// LoadSiteTokenIssuer is SiteTokenIssuer for the site key in keyFile (as
// `cmg token keygen` writes it), signing for site with the key's default kid.
func LoadSiteTokenIssuer(keyFile, site string) (TokenIssuer, error) {
	key, err := sitetoken.LoadKey(keyFile)
	if err != nil {
		return nil, err
	}
	iss, err := sitetoken.NewIssuer(key, "", site)
	if err != nil {
		return nil, err
	}
	return SiteTokenIssuer(iss, &sitetoken.Key{ID: iss.KeyID(), Site: site, Public: &key.PublicKey})
}

// presentedToken is the token a CCM_STS request carries: the whole body, or the
// "token" member of a JSON body.
func presentedToken(body []byte) []byte {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '{' {
		var v struct {
			Token string `json:"token"`
		}
		if json.Unmarshal(body, &v) != nil {
			return nil
		}
		return []byte(strings.TrimSpace(v.Token))
	}
	return body
}
