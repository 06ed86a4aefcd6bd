package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/p2p/wire"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// An announcement whose signed manifest is too big for a Nostr event
// carries only the manifest CID. The publisher's node keeps the envelope
// and provides the CID; other nodes ask providers (and their peers) for it
// over EnvelopeProtocol and accept it only if it completes the announced
// release (discovery.Release.Complete: the publisher's signature, the CID,
// the tags), so any peer may relay it.

// EnvelopeProtocol serves signed manifest envelopes by manifest CID.
//
//	request:  uvarint length, CID bytes
//	response: status byte (0 found, 1 not held), then uvarint length, envelope
const EnvelopeProtocol protocol.ID = "/archy/envelope/1.0.0"

const (
	envelopeTimeout = 10 * time.Second
	completeEvery   = 30 * time.Second
	completeRetry   = 5 * time.Minute
)

func (n *Node) manifestPath(c cid.Cid) string {
	return filepath.Join(n.cfg.DataDir, "manifests", c.String()+".json")
}

// keepEnvelope stores a verified envelope under its manifest CID.
func (n *Node) keepEnvelope(c cid.Cid, env []byte) error {
	if err := os.MkdirAll(filepath.Dir(n.manifestPath(c)), 0o700); err != nil {
		return fmt.Errorf("keep manifest: %w", err)
	}
	if err := atomicfile.Write(n.manifestPath(c), env, 0o600); err != nil {
		return fmt.Errorf("keep manifest: %w", err)
	}
	return nil
}

// envelopeFor returns an envelope this node holds for manifest c: one it
// was handed to publish, or one of a release it discovered.
func (n *Node) envelopeFor(c cid.Cid) []byte {
	if b, err := os.ReadFile(n.manifestPath(c)); err == nil && len(b) <= did.MaxEnvelopeSize {
		return b
	}
	for _, r := range n.store.List() {
		if r.CID.Equals(c) && len(r.Envelope) > 0 {
			return r.Envelope
		}
	}
	return nil
}

func (n *Node) handleEnvelope(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(envelopeTimeout))
	r := bufio.NewReader(io.LimitReader(s, 256))
	c, err := wire.ReadCID(r)
	if err != nil {
		_ = s.Reset()
		return
	}
	w := bufio.NewWriter(s)
	env := n.envelopeFor(c)
	if env == nil {
		_ = w.WriteByte(1)
		_ = w.Flush()
		return
	}
	_ = w.WriteByte(0)
	wire.WriteBytes(w, env)
	_ = w.Flush()
}

// askEnvelope asks p for manifest c's envelope.
func (n *Node) askEnvelope(ctx context.Context, p peer.ID, c cid.Cid) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, envelopeTimeout)
	defer cancel()
	s, err := n.p2p.Host().NewStream(ctx, p, EnvelopeProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	_ = s.SetDeadline(dl)
	w := bufio.NewWriter(s)
	wire.WriteBytes(w, c.Bytes())
	if err := w.Flush(); err != nil {
		_ = s.Reset()
		return nil, err
	}
	_ = s.CloseWrite()
	r := bufio.NewReader(io.LimitReader(s, did.MaxEnvelopeSize+16))
	st, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if st != 0 {
		return nil, errors.New("not held")
	}
	env, err := wire.ReadBytes(r, did.MaxEnvelopeSize)
	if err != nil {
		return nil, fmt.Errorf("read envelope of %s from %s: %w", c, p, err)
	}
	return env, nil
}

// completeRelease fetches the envelope of a CID-only release from the
// swarm (the CID's providers, then connected peers), checks it, and
// stores the completed release.
func (n *Node) completeRelease(ctx context.Context, r *discovery.Release) (*discovery.Release, error) {
	seen := map[peer.ID]bool{n.p2p.ID(): true}
	var peers []peer.ID
	provs, _ := n.p2p.FindProviders(ctx, r.CID, 8)
	for _, pi := range provs {
		n.p2p.Host().Peerstore().AddAddrs(pi.ID, pi.Addrs, time.Hour)
		if !seen[pi.ID] {
			seen[pi.ID] = true
			peers = append(peers, pi.ID)
		}
	}
	for _, p := range n.p2p.Host().Network().Peers() {
		if !seen[p] {
			seen[p] = true
			peers = append(peers, p)
		}
	}
	var errs []error
	for _, p := range peers {
		if ctx.Err() != nil {
			break
		}
		env, err := n.askEnvelope(ctx, p, r.CID)
		if err != nil {
			continue
		}
		c, err := r.Complete(env)
		if err != nil {
			errs = append(errs, fmt.Errorf("envelope from %s: %w", p, err))
			continue
		}
		if _, err := n.store.Complete(c); err != nil {
			return nil, err
		}
		// The same manifest under other addresses (the app's "latest"
		// pointer) is completed too, each against its own tags.
		for _, o := range n.store.List() {
			if o.CID.Equals(r.CID) && len(o.Envelope) == 0 {
				if oc, err := o.Complete(env); err == nil {
					if _, err := n.store.Complete(oc); err != nil {
						return nil, err
					}
				}
			}
		}
		return c, nil
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("manifest %s: no peer serves its envelope (asked %d)", r.CID, len(peers))
	}
	return nil, fmt.Errorf("manifest %s: %w", r.CID, errors.Join(errs...))
}

// completeLoop completes CID-only releases in the background: each is
// tried when first seen and then every completeRetry until it succeeds.
func (n *Node) completeLoop(ctx context.Context) error {
	tried := map[string]time.Time{}
	t := time.NewTicker(completeEvery)
	defer t.Stop()
	for {
		for _, r := range n.store.List() {
			if len(r.Envelope) > 0 {
				continue
			}
			if last, ok := tried[r.EventID]; ok && time.Since(last) < completeRetry {
				continue
			}
			tried[r.EventID] = time.Now()
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			if _, err := n.completeRelease(cctx, r); err != nil {
				n.log.Debug("release not completed yet", "app", r.AppID, "version", r.Version, "err", err)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
