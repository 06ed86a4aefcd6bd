package p2p

import (
	"context"
	"github.com/multiformats/go-base32"
	"strings"
	"sync"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// providerStore is the DHT's provider-record datastore with a cap on the
// records any one peer, and all peers together, can make the node keep.
// kad-dht accepts every ADD_PROVIDER and lets no ProviderStore be injected,
// so the cap sits under its provider manager: a record past the cap is
// dropped as it is written (the manager's batches go through Put). A
// peer's refresh of a record it already has is always kept; the node's
// own records are never capped.
type providerStore struct {
	ds.Batching // the records, in memory
	self        peer.ID
	perPeer     int
	total       int

	mu     sync.Mutex
	counts map[peer.ID]int
	stored int
}

func newProviderStore(self peer.ID, perPeer, total int) *providerStore {
	return &providerStore{Batching: dssync.MutexWrap(ds.NewMapDatastore()), self: self,
		perPeer: perPeer, total: total, counts: map[peer.ID]int{}}
}

// providerOf returns the peer a provider key (/providers/<key>/<peer>,
// both base32) names.
func providerOf(k ds.Key) (peer.ID, bool) {
	s := k.String()
	if !strings.HasPrefix(s, records.ProvidersKeyPrefix) {
		return "", false
	}
	raw, err := base32.RawStdEncoding.DecodeString(s[strings.LastIndexByte(s, '/')+1:])
	if err != nil {
		return "", false
	}
	p, err := peer.IDFromBytes(raw)
	return p, err == nil
}

// Put stores a provider record unless its peer (or everyone) is at the cap.
func (s *providerStore) Put(ctx context.Context, k ds.Key, v []byte) error {
	p, ok := providerOf(k)
	if !ok || p == s.self {
		return s.Batching.Put(ctx, k, v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	has, err := s.Batching.Has(ctx, k)
	if err != nil {
		return err
	}
	if !has && (s.counts[p] >= s.perPeer || s.stored >= s.total) {
		return nil // dropped: the record just is not found here
	}
	if err := s.Batching.Put(ctx, k, v); err != nil {
		return err
	}
	if !has {
		s.counts[p]++
		s.stored++
	}
	return nil
}

// Delete removes a record (the manager's expiry sweep) and frees its slot.
func (s *providerStore) Delete(ctx context.Context, k ds.Key) error {
	p, ok := providerOf(k)
	if !ok || p == s.self {
		return s.Batching.Delete(ctx, k)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	has, err := s.Batching.Has(ctx, k)
	if err != nil || !has {
		return err
	}
	if err := s.Batching.Delete(ctx, k); err != nil {
		return err
	}
	if s.counts[p]--; s.counts[p] <= 0 {
		delete(s.counts, p)
	}
	s.stored--
	return nil
}

// Batch applies each write through Put and Delete at commit, so batched
// writes are capped too.
func (s *providerStore) Batch(context.Context) (ds.Batch, error) { return ds.NewBasicBatch(s), nil }

// held reports the records kept for p and for everyone but the node.
func (s *providerStore) held(p peer.ID) (mine, all int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[p], s.stored
}
