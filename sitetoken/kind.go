// Package sitetoken is the one format of site-issued tokens (DESIGN section 6):
// device tokens, bulk registration tokens and content tokens, all JWTs signed
// with ES256 by a site key named by the `kid` header, carrying a `site` claim.
// `cmg token issue`, the simulated management point and the gateway's verifier
// all use this package, so the three can never disagree on the format.
//
// It is a leaf: it imports nothing from this repository.
package sitetoken

import (
	"fmt"
	"time"
)

// Kind is what a site token is for: the `kind` claim.
type Kind string

// The kinds of site token.
const (
	// Device identifies one device (its `sub`) for its ordinary traffic.
	Device Kind = "device"
	// Registration lets devices register in bulk before they have a device
	// token (the original product's bulk registration token).
	Registration Kind = "registration"
	// Content lets a device download one package (the `pkg` claim) from the
	// gateway's content endpoint.
	Content Kind = "content"
)

// Lifetimes, from the original product (original-product.md section 2).
const (
	// DefaultDeviceTTL is a device token's lifetime: 90 days.
	DefaultDeviceTTL = 90 * 24 * time.Hour
	// DeviceRenewAfter is the age after which a device token should be renewed
	// (monthly renewal of a 90-day token).
	DeviceRenewAfter = 30 * 24 * time.Hour
	// DefaultRegistrationTTL is a bulk registration token's default lifetime: 3 days.
	DefaultRegistrationTTL = 72 * time.Hour
	// MaxRegistrationTTL is the longest a registration token may live: 7 days.
	MaxRegistrationTTL = 168 * time.Hour
	// DefaultContentTTL is a content token's lifetime: 24 hours.
	DefaultContentTTL = 24 * time.Hour
)

// Kinds lists every kind.
var Kinds = []Kind{Device, Registration, Content}

// Valid reports whether k is one of the kinds.
func (k Kind) Valid() bool {
	switch k {
	case Device, Registration, Content:
		return true
	}
	return false
}

// DefaultTTL is the lifetime a token of kind k gets when none is asked for.
func (k Kind) DefaultTTL() time.Duration {
	switch k {
	case Device:
		return DefaultDeviceTTL
	case Registration:
		return DefaultRegistrationTTL
	case Content:
		return DefaultContentTTL
	}
	return 0
}

// ParseKind returns the kind named s.
func ParseKind(s string) (Kind, error) {
	k := Kind(s)
	if !k.Valid() {
		return "", fmt.Errorf("unknown token kind %q (want device, registration or content)", s)
	}
	return k, nil
}
