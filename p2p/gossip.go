package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Verdict is a validator's judgement of a catalog message.
type Verdict int

const (
	// Accept keeps the message and passes it on.
	Accept Verdict = iota
	// Ignore drops the message without blaming the peer: it is stale (a
	// catalog older than the trusted one) or could not be checked now.
	Ignore
	// Reject drops the message and counts it against the peer that sent
	// it: enough of them graylist the peer (see GraylistThreshold).
	Reject
)

// Validator judges a catalog message before it is kept and re-gossiped.
// The catalog rules (signatures, versions, expiry) live with the caller;
// this package only carries bytes. It must not keep data, and returns
// Reject only for what an honest peer never forwards (bad signatures,
// malformed bytes), since each Reject costs the sender score.
type Validator func(ctx context.Context, from peer.ID, data []byte) Verdict

// MaxCatalogSize caps a gossiped catalog message. Larger catalogs travel
// as blobs, the message carrying a pointer.
const MaxCatalogSize = 1 << 20

// Gossip peer scoring (gossipsub v1.1) on the catalog topics. An invalid
// message costs its sender InvalidWeight × (invalid messages)², decaying
// to nothing over an hour; a valid first delivery earns up to
// FirstDeliveryCap. Four invalid messages in a row put a peer below
// GraylistThreshold: everything it sends is then dropped unread until its
// score recovers (about three minutes later).
const (
	GossipThreshold   = -100.0
	PublishThreshold  = -500.0
	GraylistThreshold = -1000.0
	invalidWeight     = -100.0
	firstDeliveryCap  = 10.0
	// validateTimeout bounds a catalog validator, which may fetch a blob.
	validateTimeout = 2 * time.Minute
)

// catalogScore is the score of every catalog topic.
func catalogScore() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation:           true,
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  300,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(time.Hour),
		FirstMessageDeliveriesCap:      firstDeliveryCap,
		InvalidMessageDeliveriesWeight: invalidWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}

// scoreOptions turns on peer scoring; topics get catalogScore as they are
// joined. IP colocation is not penalised: many honest nodes share a NAT.
func scoreOptions(s *gossipScores) []pubsub.Option {
	params := &pubsub.PeerScoreParams{
		Topics:                    map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap:             50,
		AppSpecificScore:          func(peer.ID) float64 { return 0 },
		AppSpecificWeight:         1,
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             pubsub.DefaultDecayInterval,
		DecayToZero:               pubsub.DefaultDecayToZero,
		RetainScore:               time.Hour,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             GossipThreshold,
		PublishThreshold:            PublishThreshold,
		GraylistThreshold:           GraylistThreshold,
		AcceptPXThreshold:           firstDeliveryCap,
		OpportunisticGraftThreshold: 3,
	}
	return []pubsub.Option{
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(s.set), time.Second),
	}
}

// gossipScores keeps the latest peer scores gossipsub reported.
type gossipScores struct {
	mu sync.Mutex
	m  map[peer.ID]float64
}

func (s *gossipScores) set(m map[peer.ID]float64) {
	s.mu.Lock()
	s.m = m
	s.mu.Unlock()
}

// GossipScore returns p's gossip score as of the last second, and whether
// p has one (it is connected or was recently).
func (n *Node) GossipScore(p peer.ID) (float64, bool) {
	n.score.mu.Lock()
	defer n.score.mu.Unlock()
	v, ok := n.score.m[p]
	return v, ok
}

// CatalogTopic is the gossipsub topic of a registry's catalog.
func CatalogTopic(registry string) string { return "/archy/catalog/1/" + registry }

// Catalog is a node's membership in one registry's catalog topic.
type Catalog struct {
	n     *Node
	name  string
	topic *pubsub.Topic
	sub   *pubsub.Subscription
}

// ErrEmptyRegistry is returned when a registry name is empty.
var ErrEmptyRegistry = errors.New("registry name is empty")

// JoinCatalog subscribes to registry's catalog topic. Only messages that
// validate pass reach Next and travel on to other peers.
func (n *Node) JoinCatalog(registry string, validate Validator) (*Catalog, error) {
	if registry == "" || validate == nil {
		return nil, fmt.Errorf("join catalog: %w", ErrEmptyRegistry)
	}
	name := CatalogTopic(registry)
	err := n.ps.RegisterTopicValidator(name, func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if len(m.Data) > MaxCatalogSize {
			return pubsub.ValidationReject
		}
		switch validate(ctx, from, m.Data) {
		case Accept:
			return pubsub.ValidationAccept
		case Ignore:
			return pubsub.ValidationIgnore
		}
		return pubsub.ValidationReject
	}, pubsub.WithValidatorTimeout(validateTimeout))
	if err != nil {
		return nil, fmt.Errorf("join catalog %s: %w", registry, err)
	}
	t, err := n.ps.Join(name)
	if err != nil {
		_ = n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("join catalog %s: %w", registry, err)
	}
	if err := t.SetScoreParams(catalogScore()); err != nil {
		_ = t.Close()
		_ = n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("join catalog %s: score: %w", registry, err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		_ = t.Close()
		_ = n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("join catalog %s: %w", registry, err)
	}
	return &Catalog{n: n, name: name, topic: t, sub: sub}, nil
}

// Publish gossips data (it must pass this node's validator too).
func (c *Catalog) Publish(ctx context.Context, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.n.cfg.RequestTimeout)
	defer cancel()
	if err := c.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("publish catalog: %w", err)
	}
	return nil
}

// Next returns the next valid message from another peer.
func (c *Catalog) Next(ctx context.Context) ([]byte, peer.ID, error) {
	for {
		m, err := c.sub.Next(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("next catalog message: %w", err)
		}
		if m.ReceivedFrom == c.n.host.ID() {
			continue
		}
		return m.Data, m.GetFrom(), nil
	}
}

// Peers lists peers in the topic.
func (c *Catalog) Peers() []peer.ID { return c.topic.ListPeers() }

// Close leaves the topic.
func (c *Catalog) Close() error {
	c.sub.Cancel()
	return errors.Join(c.topic.Close(), c.n.ps.UnregisterTopicValidator(c.name))
}
