package relay

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the fields of Config. A zero field in a Config given to New
// takes the default named here.
const (
	DefaultListen                  = "127.0.0.1:7447"
	DefaultMaxMessageSize          = 128 << 10 // bytes in one websocket message
	DefaultMaxSubscriptions        = 32        // open subscriptions per connection
	DefaultMaxFilters              = 16        // filters in one REQ
	DefaultMaxLimit                = 500       // events returned per filter of a REQ
	DefaultMaxSubIDLength          = 64        // NIP-01's bound on a subscription id
	DefaultMaxEventTags            = 2000      // tags in one event
	DefaultMaxConnections          = 256       // websocket connections at once
	DefaultMaxConnectionsPerIP     = 32        // from one IP address (IPv6: one /64)
	DefaultMaxConnectionsPerOrigin = 16        // from pages of one allowed browser origin
	DefaultMaxEvents               = 1_000_000 // events and tombstones stored at once
	DefaultMaxStoredBytes          = 512 << 20 // bytes of event JSON and tombstones stored at once
	DefaultEventRate               = 10.0      // EVENTs per second per connection
	DefaultEventBurst              = 50
	DefaultReqRate                 = 20.0 // REQs per second per connection
	DefaultReqBurst                = 50
	DefaultMaxFutureSkew           = 15 * time.Minute
	DefaultWriteTimeout            = 10 * time.Second
	DefaultPingInterval            = 30 * time.Second
	DefaultSendBuffer              = 1 << 20 // bytes queued for one connection
	DefaultShutdownTimeout         = 5 * time.Second
)

// Config is everything a Relay is built from. The zero value of every field
// means its default (see the Default constants), so Config{DataDir: dir} is
// a complete configuration.
type Config struct {
	// Listen is the host:port Run binds. Default 127.0.0.1:7447: the relay
	// is reachable from this machine only unless told otherwise.
	Listen string
	// DataDir is the folder that holds the event log. Empty means the
	// relay keeps events in memory only and forgets them when it stops.
	DataDir string

	// Name, Description, PubKey and Contact are published in the NIP-11
	// relay information document.
	Name        string
	Description string
	PubKey      string
	Contact     string

	// MaxMessageSize bounds one websocket message from a client, in bytes.
	// A larger message closes the connection (status 1009).
	MaxMessageSize int64
	// MaxSubscriptions bounds the open subscriptions of one connection;
	// one more REQ is answered with CLOSED.
	MaxSubscriptions int
	// MaxFilters bounds the filters of one REQ.
	MaxFilters int
	// MaxLimit bounds the stored events returned per filter, and is the
	// limit of a filter that sets none.
	MaxLimit int
	// MaxSubIDLength bounds the length of a subscription id.
	MaxSubIDLength int
	// MaxEventTags bounds the number of tags of one event.
	MaxEventTags int
	// MaxConnections bounds the websocket connections open at once.
	MaxConnections int
	// MaxConnectionsPerIP bounds the connections open at once from one
	// client address (IPv4), or one /64 (IPv6, where a host commonly has a
	// whole /64), so that one machine cannot take every slot. Past it an
	// upgrade is refused with 429. Loopback clients count too (127.0.0.1
	// is one address); the node's own discovery client needs one.
	MaxConnectionsPerIP int
	// AllowedOrigins are the browser origins ("https://app.example",
	// scheme://host[:port] as a browser sends it in the Origin header)
	// whose pages may open a websocket; "*" allows every origin. A
	// websocket upgrade whose Origin is not allowed is refused with 403.
	// Clients that send no Origin (not a browser: the node's discovery
	// client, other relays, CLI tools) are not concerned, only
	// MaxConnectionsPerIP applies to them.
	//
	// Default (empty): no browser origin, except a page served from the
	// relay's own address when that address is loopback (Origin equal to
	// the Host header, host "localhost", 127.0.0.0/8 or ::1). Without this,
	// any web page open in a browser on this machine could connect to the
	// relay on 127.0.0.1 and take its connection slots (the relay never
	// sees the page's origin otherwise; a DNS-rebound name is not loopback
	// and stays refused). An operator serving browser Nostr clients lists
	// their origins, or "*".
	AllowedOrigins []string
	// MaxConnectionsPerOrigin bounds the connections open at once from the
	// pages of one allowed browser origin. Past it an upgrade is refused
	// with 429.
	MaxConnectionsPerOrigin int
	// MaxEvents and MaxStoredBytes bound what is stored (all of it held in
	// memory, indexed): events, and the tombstones NIP-09 deletion requests
	// leave (one per deleted id or address, kept for good, charged its key
	// plus 64 bytes). Past either, new events are refused ("error: relay
	// storage is full").
	MaxEvents      int
	MaxStoredBytes int

	// EventRate and EventBurst are the token bucket for EVENT messages of
	// one connection: EventRate tokens per second, at most EventBurst.
	EventRate  float64
	EventBurst int
	// ReqRate and ReqBurst are the token bucket for REQ messages of one
	// connection.
	ReqRate  float64
	ReqBurst int

	// MaxFutureSkew is how far in the future an event's created_at may be.
	MaxFutureSkew time.Duration
	// WriteTimeout is the deadline of every write to a client.
	WriteTimeout time.Duration
	// PingInterval is how often an idle client is pinged; a client that
	// does not answer within WriteTimeout is disconnected.
	PingInterval time.Duration
	// SendBuffer bounds the bytes waiting to be sent to one client. A
	// client that lets live events pile up past it is disconnected. A
	// connection costs at most about 2*SendBuffer + MaxMessageSize.
	SendBuffer int
	// ShutdownTimeout bounds how long Serve waits for connections to end.
	ShutdownTimeout time.Duration

	// Now is the relay's clock; nil means time.Now.
	Now func() time.Time
	// Metrics, if set, is where the relay registers its Prometheus
	// metrics (archy_relay_*).
	Metrics prometheus.Registerer
}

// DefaultConfig returns a Config with every field at its default and no
// DataDir.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

func (c Config) withDefaults() Config {
	setDefault(&c.Listen, DefaultListen)
	setDefault(&c.Name, "archy relay")
	setDefault(&c.Description, "the Nostr relay embedded in an archy node")
	setDefault(&c.MaxMessageSize, DefaultMaxMessageSize)
	setDefault(&c.MaxSubscriptions, DefaultMaxSubscriptions)
	setDefault(&c.MaxFilters, DefaultMaxFilters)
	setDefault(&c.MaxLimit, DefaultMaxLimit)
	setDefault(&c.MaxSubIDLength, DefaultMaxSubIDLength)
	setDefault(&c.MaxEventTags, DefaultMaxEventTags)
	setDefault(&c.MaxConnections, DefaultMaxConnections)
	setDefault(&c.MaxConnectionsPerIP, DefaultMaxConnectionsPerIP)
	setDefault(&c.MaxConnectionsPerOrigin, DefaultMaxConnectionsPerOrigin)
	setDefault(&c.MaxEvents, DefaultMaxEvents)
	setDefault(&c.MaxStoredBytes, DefaultMaxStoredBytes)
	setDefault(&c.EventRate, DefaultEventRate)
	setDefault(&c.EventBurst, DefaultEventBurst)
	setDefault(&c.ReqRate, DefaultReqRate)
	setDefault(&c.ReqBurst, DefaultReqBurst)
	setDefault(&c.MaxFutureSkew, DefaultMaxFutureSkew)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.PingInterval, DefaultPingInterval)
	setDefault(&c.SendBuffer, DefaultSendBuffer)
	setDefault(&c.ShutdownTimeout, DefaultShutdownTimeout)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// ConfigError is returned by Validate and New when a field of Config is
// wrong. Field is the Go name of the field.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("relay config: %s %s", e.Field, e.Reason)
}

// Validate reports the first wrong field of c, as a *ConfigError. Zero
// fields are fine: they take their defaults.
func (c Config) Validate() error {
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return &ConfigError{"Listen", fmt.Sprintf("must be host:port: %v", err)}
		}
	}
	if c.PubKey != "" && !isHex64(c.PubKey) {
		return &ConfigError{"PubKey", "must be 64 lowercase hex characters"}
	}
	for i, o := range c.AllowedOrigins {
		if _, err := normalizeOrigin(o); err != nil && o != "*" {
			return &ConfigError{fmt.Sprintf("AllowedOrigins[%d]", i), err.Error()}
		}
	}
	checks := []struct {
		field string
		bad   bool
		why   string
	}{
		{"MaxMessageSize", c.MaxMessageSize < 0 || (c.MaxMessageSize > 0 && c.MaxMessageSize < 1024), "must be at least 1024 bytes"},
		{"MaxSubscriptions", c.MaxSubscriptions < 0, "must not be negative"},
		{"MaxFilters", c.MaxFilters < 0, "must not be negative"},
		{"MaxLimit", c.MaxLimit < 0, "must not be negative"},
		{"MaxSubIDLength", c.MaxSubIDLength < 0, "must not be negative"},
		{"MaxEventTags", c.MaxEventTags < 0, "must not be negative"},
		{"MaxConnections", c.MaxConnections < 0, "must not be negative"},
		{"MaxConnectionsPerIP", c.MaxConnectionsPerIP < 0, "must not be negative"},
		{"MaxConnectionsPerOrigin", c.MaxConnectionsPerOrigin < 0, "must not be negative"},
		{"MaxEvents", c.MaxEvents < 0, "must not be negative"},
		{"MaxStoredBytes", c.MaxStoredBytes < 0, "must not be negative"},
		{"EventRate", c.EventRate < 0, "must not be negative"},
		{"EventBurst", c.EventBurst < 0, "must not be negative"},
		{"ReqRate", c.ReqRate < 0, "must not be negative"},
		{"ReqBurst", c.ReqBurst < 0, "must not be negative"},
		{"MaxFutureSkew", c.MaxFutureSkew < 0, "must not be negative"},
		{"WriteTimeout", c.WriteTimeout < 0, "must not be negative"},
		{"PingInterval", c.PingInterval < 0, "must not be negative"},
		{"SendBuffer", c.SendBuffer < 0 || (c.SendBuffer > 0 && int64(c.SendBuffer) < 2*c.withDefaults().MaxMessageSize), "must hold at least two messages of the largest size allowed"},
		{"ShutdownTimeout", c.ShutdownTimeout < 0, "must not be negative"},
	}
	for _, ch := range checks {
		if ch.bad {
			return &ConfigError{ch.field, ch.why}
		}
	}
	return nil
}

// normalizeOrigin checks that o is an origin as browsers send it
// (scheme://host[:port], nothing more) and returns it in lower case.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("%q must be an origin: http(s)://host[:port]", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}
