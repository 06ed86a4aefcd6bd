package p2p

import (
	"context"
	"errors"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Validator decides whether a catalog message is kept and re-gossiped. The
// catalog rules (signatures, versions, expiry) live with the caller; this
// package only carries bytes. It must return quickly and must not keep data.
type Validator func(ctx context.Context, from peer.ID, data []byte) bool

// MaxCatalogSize caps a gossiped catalog message.
const MaxCatalogSize = 1 << 20

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
	err := n.ps.RegisterTopicValidator(name, func(ctx context.Context, from peer.ID, m *pubsub.Message) bool {
		if len(m.Data) > MaxCatalogSize {
			return false
		}
		return validate(ctx, from, m.Data)
	})
	if err != nil {
		return nil, fmt.Errorf("join catalog %s: %w", registry, err)
	}
	t, err := n.ps.Join(name)
	if err != nil {
		_ = n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("join catalog %s: %w", registry, err)
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
