package orchestrator

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/archy-node/archy/registry"
)

// Install authority: an installed app is pinned to the DID that published
// it. A release of the same id from another DID is a different app, never
// an update, unless a rotation statement signed by the pinned DID names
// the new one; versions only go up unless the owner forces a downgrade.
// The app's data and secrets are never handed to another publisher's
// containers: the pin outlives an uninstall that keeps them.

var (
	// ErrPublisherMismatch is returned when a release of an installed app
	// (or of one whose data and secrets the node keeps) is signed by
	// another DID than the one the app is pinned to, with no valid
	// rotation statement from that DID: a different app, not an update.
	ErrPublisherMismatch = errors.New("release is from another publisher than the installed app: a different app, not an update")
	// ErrDowngrade is returned when a release's version is not above the
	// installed one and the owner did not allow a downgrade.
	ErrDowngrade = errors.New("version does not go up")
)

// rotationSkew is how far in the future a rotation statement may be
// issued (clocks differ).
const rotationSkew = 10 * time.Minute

// Option changes how Install and Update judge a release.
type Option func(*options)

type options struct {
	allowDowngrade bool
	rotations      [][]byte
}

// AllowDowngrade is the owner forcing a release whose version is not
// above the installed one.
func AllowDowngrade() Option { return func(o *options) { o.allowDowngrade = true } }

// WithRotations hands rotation statements (DSSE JSON, see
// registry.VerifyRotation), oldest first, that move the app's pin from
// its publisher to the release's.
func WithRotations(statements ...[]byte) Option {
	return func(o *options) { o.rotations = append(o.rotations, statements...) }
}

func optionsOf(opts []Option) options {
	var o options
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// Pin is the publisher an installed app is pinned to.
type Pin struct {
	// Publisher is the DID whose releases are updates of the app.
	Publisher string `json:"publisher"`
	// Rotated is the issue time of the last rotation statement that moved
	// the pin (registry.ExpiresLayout); a statement must be issued after
	// it to apply.
	Rotated string `json:"rotated,omitempty"`
	// Rotations are the statements that moved the pin, oldest first.
	Rotations [][]byte `json:"rotations,omitempty"`
}

func (p *Pin) clone() *Pin {
	c := *p
	c.Rotations = slices.Clone(p.Rotations)
	return &c
}

// authorize decides whether rel may replace (or reuse the data of) an app
// of the given id pinned to pin at version cur: its version must be above
// cur, or equal to it when same is true (a reinstall over kept data).
// It returns the pin to keep when rel is accepted: pin itself, or
// pin moved by the rotation statements in opts.
func (o *Orchestrator) authorize(id string, pin *Pin, cur string, same bool, rel *Release, opts options) (*Pin, error) {
	m, err := rel.Manifest()
	if err != nil {
		return nil, err
	}
	next := pin.clone()
	var why []error
	if m.Publisher != pin.Publisher {
		for i, b := range opts.rotations {
			if next.Publisher == m.Publisher {
				break
			}
			r, err := o.applyRotation(id, next, b)
			if err != nil {
				why = append(why, fmt.Errorf("rotation statement %d: %w", i+1, err))
				break
			}
			o.log.Info("rotation statement accepted", "app", id, "from", r.From, "to", r.To, "issued", r.Issued)
		}
	}
	if next.Publisher != m.Publisher {
		err := fmt.Errorf("%s %s is signed by %s, but %s is pinned to %s (only a rotation statement signed by %s moves it): %w",
			m.ID, m.Version, m.Publisher, id, pin.Publisher, pin.Publisher, ErrPublisherMismatch)
		return nil, errors.Join(append([]error{err}, why...)...)
	}
	if !opts.allowDowngrade {
		nv, err := semver.StrictNewVersion(m.Version)
		if err != nil {
			return nil, fmt.Errorf("%s version %q: %w", m.ID, m.Version, err)
		}
		cv, err := semver.StrictNewVersion(cur)
		if err != nil {
			return nil, fmt.Errorf("%s installed version %q: %w", id, cur, err)
		}
		if nv.LessThan(cv) || (nv.Equal(cv) && !same) {
			return nil, fmt.Errorf("%s %s is not above %s, the version installed (the owner can force it: --allow-downgrade): %w", m.ID, m.Version, cur, ErrDowngrade)
		}
	}
	return next, nil
}

// applyRotation verifies one rotation statement against the pin and moves
// the pin by it.
func (o *Orchestrator) applyRotation(id string, pin *Pin, b []byte) (*registry.Rotation, error) {
	r, err := registry.VerifyRotation(b)
	if err != nil {
		return nil, err
	}
	issued, _ := r.IssuedAt() // VerifyRotation checked it
	switch {
	case r.App != id:
		return nil, fmt.Errorf("%w: it rotates app %s, not %s", registry.ErrInvalidRotation, r.App, id)
	case r.From != pin.Publisher:
		return nil, fmt.Errorf("%w: it rotates away from %s, but %s is pinned to %s", registry.ErrInvalidRotation, r.From, id, pin.Publisher)
	case issued.After(o.cfg.Now().Add(rotationSkew)):
		return nil, fmt.Errorf("%w: issued %s, in the future", registry.ErrInvalidRotation, r.Issued)
	}
	if pin.Rotated != "" {
		if last, err := time.Parse(registry.ExpiresLayout, pin.Rotated); err == nil && !issued.After(last) {
			return nil, fmt.Errorf("%w: issued %s, not after the last rotation of %s (%s)", registry.ErrInvalidRotation, r.Issued, id, pin.Rotated)
		}
	}
	pin.Publisher, pin.Rotated = r.To, r.Issued
	pin.Rotations = append(pin.Rotations, slices.Clone(b))
	return r, nil
}

// hasKept reports whether the node keeps data or secrets of app id.
func (o *Orchestrator) hasKept(id string) bool {
	for _, p := range []string{o.DataDir(id), o.secrets.appDir(id)} {
		if _, err := os.Lstat(p); err == nil {
			return true
		}
	}
	return false
}

// authorizeNew decides whether rel may be installed as a new app: if the
// node keeps data or secrets of its id, the pin recorded with them rules
// as if the app were installed (its version too, as the data may not go
// back). It returns the new app's pin.
func (o *Orchestrator) authorizeNew(rel *Release, opts options) (*Pin, error) {
	m, err := rel.Manifest()
	if err != nil {
		return nil, err
	}
	kept, err := o.store.keptPin(m.ID)
	if err != nil {
		return nil, err
	}
	if kept == nil || !o.hasKept(m.ID) {
		return &Pin{Publisher: m.Publisher}, nil
	}
	pin, err := o.authorize(m.ID, kept.Pin, kept.Version, true, rel, opts)
	if err != nil {
		return nil, fmt.Errorf("the node keeps data and secrets of an uninstalled %s %s from %s (remove %s and %s to install another publisher's app under this id): %w",
			m.ID, kept.Version, kept.Pin.Publisher, o.DataDir(m.ID), o.secrets.appDir(m.ID), err)
	}
	return pin, nil
}
