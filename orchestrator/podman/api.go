package podman

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// The libpod REST API, spoken directly over net/http: only the requests
// and the JSON fields archy uses. The Podman Go bindings this replaces
// pulled about 40 MiB of code into the node's executable (its resident
// text) for the same dozen calls.

// Bounds on what is read from an answer: an error body is a short JSON
// object; an inspect or a list of a node's containers is far below maxJSON.
const (
	maxErrorBody = 64 << 10
	maxJSON      = 16 << 20
)

// apiError is a non-2xx, non-3xx answer: Podman's error model
// ({"cause", "message", "response"}) or, failing that, the body's start.
type apiError struct {
	Code    int
	Message string
}

func (e *apiError) Error() string { return e.Message }

// client sends requests to one Podman service.
type client struct {
	http *http.Client
	// base is "http://d" for a unix socket, or the tcp service's URL.
	base string
	// version is the API version put in each path (/vX.Y.Z/libpod/...):
	// the service's own, learned by the first ping.
	version string
}

func newClient(socket string) (*client, error) {
	u, err := url.Parse(socket)
	if err != nil {
		return nil, fmt.Errorf("podman socket URL %q: %w", socket, err)
	}
	c := &client{}
	var dial func(ctx context.Context, _, _ string) (net.Conn, error)
	switch u.Scheme {
	case "unix":
		// unix://run/x.sock means /run/x.sock, as Podman's own clients read it.
		sockPath := path.Clean("/" + u.Host + "/" + u.Path)
		if u.Opaque != "" || sockPath == "/" {
			return nil, fmt.Errorf("podman socket URL %q: want unix:///path/to/podman.sock", socket)
		}
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sockPath)
		}
		c.base = "http://d"
	case "tcp":
		host := u.Host
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", host)
		}
		c.base = "http://" + u.Host + strings.TrimSuffix(u.Path, "/")
	default:
		return nil, fmt.Errorf("podman socket URL %q: scheme %q is not unix or tcp", socket, u.Scheme)
	}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext:         dial,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}}
	return c, nil
}

// close drops the idle connections.
func (c *client) close() { c.http.CloseIdleConnections() }

// path joins a libpod endpoint, escaping each value put into it:
// path("/containers/%s/json", name).
func (c *client) path(endpoint string, values ...string) string {
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = url.PathEscape(v)
	}
	return fmt.Sprintf(c.base+"/v"+c.version+"/libpod"+endpoint, args...)
}

// do sends a request (a body of size bytes and contentType, if any) and
// returns the answer if its status is 2xx or 3xx (the caller closes the
// body); any other status is returned as an *apiError carrying Podman's
// message.
func (c *client) do(ctx context.Context, method, uri string, query url.Values, body io.Reader, size int64, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, uri, body)
	if err != nil {
		return nil, err
	}
	if len(query) > 0 {
		req.URL.RawQuery = query.Encode()
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
		req.ContentLength = size
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 || resp.StatusCode/100 == 3 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readError(resp)
}

func readError(resp *http.Response) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return fmt.Errorf("read podman's %d answer: %w", resp.StatusCode, err)
	}
	var m struct {
		Message string `json:"message"`
		Code    int    `json:"response"`
	}
	e := &apiError{Code: resp.StatusCode}
	if json.Unmarshal(b, &m) == nil && m.Message != "" {
		e.Message = m.Message
		if m.Code != 0 {
			e.Code = m.Code
		}
	} else {
		e.Message = fmt.Sprintf("podman answered %s: %q", resp.Status, strings.TrimSpace(string(b)))
	}
	return e
}

// call sends a request and decodes its JSON answer into out (if not nil),
// reading at most maxJSON bytes.
func (c *client) call(ctx context.Context, method, uri string, query url.Values, in, out any) error {
	var body io.Reader
	var size int64
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body, size = strings.NewReader(string(b)), int64(len(b))
	}
	resp, err := c.do(ctx, method, uri, query, body, size, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decode(resp.Body, out)
}

func decode(r io.Reader, out any) error {
	b, err := io.ReadAll(io.LimitReader(r, maxJSON+1))
	if err != nil {
		return fmt.Errorf("read podman's answer: %w", err)
	}
	if len(b) > maxJSON {
		return fmt.Errorf("podman's answer is over %d bytes", maxJSON)
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode podman's answer %.200q: %w", b, err)
	}
	return nil
}

// filters encodes label filters as the API takes them: a JSON object of
// string lists.
func filters(key string, values []string) url.Values {
	if len(values) == 0 {
		return nil
	}
	b, _ := json.Marshal(map[string][]string{key: values})
	return url.Values{"filters": {string(b)}}
}

// parseVersion reads "4.3.1" (or "4.3.1-dev", "v5.0") as three numbers.
func parseVersion(s string) ([3]int, error) {
	var v [3]int
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 3 {
		return v, fmt.Errorf("version %q is not major.minor.patch", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, fmt.Errorf("version %q is not major.minor.patch", s)
		}
		v[i] = n
	}
	return v, nil
}

func versionLess(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func versionString(v [3]int) string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

// What archy sends: a SpecGenerator with the fields it sets, and a
// network. The JSON is what the Podman v5 bindings sent for the same
// spec (see testdata/specgen*.json).

type specGenerator struct {
	Name              string            `json:"name,omitempty"`
	Entrypoint        []string          `json:"entrypoint,omitempty"`
	Command           []string          `json:"command,omitempty"`
	Env               map[string]string `json:"env,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	StopTimeout       *uint             `json:"stop_timeout,omitempty"`
	RestartPolicy     string            `json:"restart_policy,omitempty"`
	RestartRetries    *uint             `json:"restart_tries,omitempty"`
	PidNS             namespace         `json:"pidns"`
	UtsNS             namespace         `json:"utsns"`
	InitContainerType string            `json:"init_container_type"`
	Image             string            `json:"image"`
	Mounts            []mount           `json:"mounts,omitempty"`
	IpcNS             namespace         `json:"ipcns"`
	User              string            `json:"user,omitempty"`
	CapAdd            []string          `json:"cap_add,omitempty"`
	CapDrop           []string          `json:"cap_drop,omitempty"`
	NoNewPrivileges   *bool             `json:"no_new_privileges,omitempty"`
	UserNS            namespace         `json:"userns"`
	CgroupNS          namespace         `json:"cgroupns"`
	NetNS             namespace         `json:"netns"`
	PortMappings      []portMapping     `json:"portmappings,omitempty"`
	// Networks has no JSON tag in Podman's SpecGenerator.
	Networks       map[string]perNetworkOptions `json:"Networks"`
	ResourceLimits *resources                   `json:"resource_limits,omitempty"`
	// What specgen.NewSpecGenerator fills in; Podman 4.3 ignores them.
	HealthLogDestination string `json:"healthLogDestination"`
	HealthMaxLogCount    uint   `json:"healthMaxLogCount"`
	HealthMaxLogSize     uint   `json:"healthMaxLogSize"`
}

type namespace struct {
	NSMode string `json:"nsmode,omitempty"`
	Value  string `json:"value,omitempty"`
}

type mount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type,omitempty"`
	Source      string   `json:"source,omitempty"`
	Options     []string `json:"options,omitempty"`
}

type portMapping struct {
	HostIP        string `json:"host_ip"`
	ContainerPort uint16 `json:"container_port"`
	HostPort      uint16 `json:"host_port"`
	Range         uint16 `json:"range"`
	Protocol      string `json:"protocol"`
}

type perNetworkOptions struct {
	Aliases       []string `json:"aliases,omitempty"`
	InterfaceName string   `json:"interface_name"`
}

// resources is the OCI runtime spec's LinuxResources, the parts archy sets.
type resources struct {
	Memory *struct {
		Limit *int64 `json:"limit,omitempty"`
	} `json:"memory,omitempty"`
	CPU *struct {
		Quota  *int64  `json:"quota,omitempty"`
		Period *uint64 `json:"period,omitempty"`
	} `json:"cpu,omitempty"`
	Pids *struct {
		Limit int64 `json:"limit"`
	} `json:"pids,omitempty"`
}

type networkCreate struct {
	Name        string            `json:"name"`
	Driver      string            `json:"driver"`
	IPv6Enabled bool              `json:"ipv6_enabled"`
	Internal    bool              `json:"internal"`
	DNSEnabled  bool              `json:"dns_enabled"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// What archy reads back.

type inspectData struct {
	ID              string `json:"Id"`
	Name            string
	Image           string // the image's ID
	ImageName       string
	State           *inspectState
	Config          *inspectConfig
	HostConfig      *inspectHostConfig
	BoundingCaps    []string
	Mounts          []inspectMount
	NetworkSettings *struct {
		Networks map[string]*struct {
			Aliases []string
		}
	}
}

type inspectState struct {
	Status     string
	Pid        int
	ExitCode   int32
	StartedAt  time.Time
	FinishedAt time.Time
}

type inspectConfig struct {
	Image       string
	Labels      map[string]string
	Env         []string
	Cmd         []string
	Entrypoint  entrypoint
	User        string
	StopTimeout uint
}

// entrypoint reads Podman 5's list and Podman 4's space-joined string.
type entrypoint []string

func (e *entrypoint) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		*e = []string{}
	case string:
		*e = strings.Split(v, " ")
	case []any:
		*e = []string{}
		for _, s := range v {
			if s, ok := s.(string); ok {
				*e = append(*e, s)
			}
		}
	default:
		return fmt.Errorf("entrypoint of type %T", v)
	}
	return nil
}

type inspectHostConfig struct {
	PortBindings map[string][]struct {
		HostIP   string `json:"HostIp"`
		HostPort string
	}
	RestartPolicy *struct {
		Name              string
		MaximumRetryCount uint
	}
	SecurityOpt []string
	Memory      int64
	NanoCpus    int64
	CpuPeriod   uint64 //nolint:revive // Podman's name
	CpuQuota    int64  //nolint:revive // Podman's name
	PidsLimit   int64
}

type inspectMount struct {
	Source      string
	Destination string
	RW          bool
}

type listedContainer struct {
	ID        string `json:"Id"`
	Names     []string
	Image     string
	ImageID   string
	State     string
	Pid       int
	StartedAt int64
	ExitedAt  int64
	ExitCode  int32
	Labels    map[string]string
}

type listedNetwork struct {
	Name   string            `json:"name"`
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels"`
}

// event is Podman's event, in Docker's shape.
type event struct {
	Status string `json:"status"` // Podman 4.3 fills it; Action later
	Action string
	Actor  struct {
		ID         string
		Attributes map[string]string
	}
	Time     int64 `json:"time"`
	TimeNano int64 `json:"timeNano"`
}

// report is one entry of a remove's answer: an Err that is not empty
// is a failure.
type report struct {
	Err json.RawMessage
}

func reportErr(rs []report) error {
	for _, r := range rs {
		s := strings.TrimSpace(string(r.Err))
		if s == "" || s == "null" || s == "{}" || s == `""` {
			continue
		}
		var msg string
		if json.Unmarshal(r.Err, &msg) != nil {
			msg = s
		}
		return errors.New(msg)
	}
	return nil
}
