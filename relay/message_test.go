package relay

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

func TestParseClientMessage(t *testing.T) {
	ev := knownEvents[0]
	cases := []struct {
		in    string
		label string // type of the result, or of the refusal
		ok    bool
	}{
		{`["EVENT",` + ev + `]`, "EVENT", true},
		{`["REQ","s",{}]`, "REQ", true},
		{`["REQ","s",{"ids":["` + strings.Repeat("a", 64) + `"],"kinds":[0,65535],"#t":["x"],"#Z":[],"since":0,"until":1,"limit":5,"unknown":{"x":1}}]`, "REQ", true},
		{`["CLOSE","s"]`, "CLOSE", true},
		{` [ "CLOSE" , "s" ] `, "CLOSE", true},
		{`["EVENT",` + ev + `,1]`, "EVENT", false},
		{`["EVENT","sub",` + ev + `]`, "EVENT", false},
		{`["EVENT",` + strings.Replace(ev, `"kind":1`, `"kind":1.0`, 1) + `]`, "EVENT", false},
		{`["EVENT",` + strings.Replace(ev, `"kind":1`, `"kind":1,"kind":70000`, 1) + `]`, "EVENT", false},
		{`["EVENT",` + strings.Replace(ev, `"tags":[]`, `"tags":[[1]]`, 1) + `]`, "EVENT", false},
		{`["EVENT",` + strings.Replace(ev, `"tags":[],`, ``, 1) + `]`, "EVENT", false},
		{`["REQ","",{}]`, "REQ", false},
		{`["REQ","s",{"kinds":[65536]}]`, "REQ", false},
		{`["REQ","s",{"authors":["ABC"]}]`, "REQ", false},
		{`["REQ","s",{"#tt":["x"]}]`, "REQ", false},
		{`["REQ","s",{"#1":["x"]}]`, "REQ", false},
		{`["REQ","s",{"#t":"x"}]`, "REQ", false},
		{`["REQ","s",{"since":1e3}]`, "REQ", false},
		{`["REQ","s",{"limit":-1}]`, "REQ", false},
		{`["REQ","s",[]]`, "REQ", false},
		{`["CLOSE",1]`, "CLOSE", false},
		{`["CLOSE","a","b"]`, "CLOSE", false},
		{`["XEVENTX",{}]`, "", false},
		{`["AUTH","challenge"]`, "", false},
		{`["COUNT","s",{}]`, "", false},
		{`["EVENT",{}]trailing`, "", false},
		{`{"EVENT":1}`, "", false},
		{``, "", false},
	}
	for _, tc := range cases {
		msg, err := parseClientMessage([]byte(tc.in), 64)
		if (err == nil) != tc.ok {
			t.Errorf("%.80s: err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			var perr *parseError
			if !errors.As(err, &perr) || perr.label != tc.label {
				t.Errorf("%.80s: refused as %q, want %q", tc.in, perr.label, tc.label)
			}
			continue
		}
		label := map[string]string{"relay.eventMessage": "EVENT", "relay.reqMessage": "REQ", "relay.closeMessage": "CLOSE"}[typeName(msg)]
		if label != tc.label {
			t.Errorf("%.80s: parsed as %s, want %s", tc.in, typeName(msg), tc.label)
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case eventMessage:
		return "relay.eventMessage"
	case reqMessage:
		return "relay.reqMessage"
	case closeMessage:
		return "relay.closeMessage"
	}
	return "?"
}

// FuzzParseClientMessage feeds the parser arbitrary bytes. It must never
// panic, and what it accepts must have the forms the rest of the relay
// relies on.
func FuzzParseClientMessage(f *testing.F) {
	for _, ev := range knownEvents {
		f.Add([]byte(`["EVENT",` + ev + `]`))
	}
	for _, s := range []string{
		`["REQ","s",{"ids":["` + strings.Repeat("a", 64) + `"],"kinds":[1],"#t":["x"],"since":0,"until":1,"limit":5}]`,
		`["REQ","s",{},{"authors":["` + strings.Repeat("b", 64) + `"]}]`,
		`["CLOSE","s"]`,
		`["EVENT",{"id":1}]`,
		`[`,
		`["REQ","s",{"#e":[null]}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := parseClientMessage(data, 64)
		if err != nil {
			var perr *parseError
			if !errors.As(err, &perr) || perr.msg == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			if perr.id != "" && !isHex64(perr.id) {
				t.Fatalf("refusal carries a bad id %q", perr.id)
			}
			return
		}
		switch m := msg.(type) {
		case eventMessage:
			ev := m.event
			if !isHex64(ev.ID) || !isHex64(ev.PubKey) || len(ev.Sig) != 128 || ev.Kind < 0 || ev.Kind > 65535 || ev.CreatedAt < 0 || ev.Tags == nil {
				t.Fatalf("accepted a malformed event: %+v", ev)
			}
			// The relay's checks must not panic on anything the parser
			// lets through.
			r := &Relay{cfg: DefaultConfig()}
			_ = r.check(&ev, ev.CreatedAt.Time())
			if _, err := json.Marshal(ev); err != nil {
				t.Fatalf("accepted event does not encode: %v", err)
			}
		case reqMessage:
			if m.subID == "" || len(m.subID) > 64 || len(m.filters) == 0 {
				t.Fatalf("accepted a malformed REQ: %+v", m)
			}
			for _, f := range m.filters {
				for k := range f.Tags {
					if len(k) != 1 {
						t.Fatalf("accepted tag filter %q", k)
					}
				}
				if f.Limit < 0 || f.Search != "" {
					t.Fatalf("accepted filter %+v", f)
				}
				_ = f.Matches(&nostr.Event{})
			}
			s := newStore(10, DefaultMaxStoredBytes)
			s.query(m.filters, func(f *nostr.Filter) int { return f.Limit }, nil)
		case closeMessage:
		default:
			t.Fatalf("parser returned %T", msg)
		}
	})
}
