package relay

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mailru/easyjson"
	"github.com/nbd-wtf/go-nostr"
	"github.com/tidwall/gjson"
)

// The client messages of NIP-01, as parseClientMessage returns them.
type (
	eventMessage struct{ event nostr.Event }
	reqMessage   struct {
		subID   string
		filters nostr.Filters
	}
	closeMessage struct{ subID string }
)

// parseError is what parseClientMessage returns for a message it refuses.
// id and subID carry the event id or subscription id when they could be
// read, so the relay can answer with OK or CLOSED rather than NOTICE.
type parseError struct {
	label string // "EVENT", "REQ", "CLOSE" or "" when unknown
	id    string // valid event id of a refused EVENT, or ""
	subID string // subscription id of a refused REQ, or ""
	msg   string // reason, safe to send back (no echo of the input)
}

func (e *parseError) Error() string { return e.msg }

var errNotArray = errors.New("message is not a JSON array")

// parseClientMessage parses one message from a client strictly: a JSON
// array whose first element is exactly "EVENT", "REQ" or "CLOSE", with the
// shape NIP-01 gives each. An EVENT's fields are checked for presence and
// type (not yet its id or signature); a REQ's filters for the forms NIP-01
// allows. The returned value is an eventMessage, reqMessage or
// closeMessage; the error is a *parseError.
func parseClientMessage(data []byte, maxSubIDLength int) (any, error) {
	if !gjson.ValidBytes(data) {
		return nil, &parseError{msg: "message is not valid JSON"}
	}
	root := gjson.ParseBytes(data)
	if !root.IsArray() {
		return nil, &parseError{msg: errNotArray.Error()}
	}
	arr := root.Array()
	if len(arr) == 0 || arr[0].Type != gjson.String {
		return nil, &parseError{msg: "message does not start with a label"}
	}
	switch arr[0].Str {
	case "EVENT":
		return parseEvent(arr)
	case "REQ":
		return parseReq(arr, maxSubIDLength)
	case "CLOSE":
		if len(arr) != 2 || arr[1].Type != gjson.String {
			return nil, &parseError{label: "CLOSE", msg: `CLOSE must be ["CLOSE",<subscription id>]`}
		}
		return closeMessage{subID: arr[1].Str}, nil
	default:
		return nil, &parseError{msg: "unknown message type; this relay speaks EVENT, REQ and CLOSE"}
	}
}

func parseEvent(arr []gjson.Result) (any, error) {
	if len(arr) != 2 || !arr[1].IsObject() {
		return nil, &parseError{label: "EVENT", msg: `EVENT must be ["EVENT",<event object>]`}
	}
	obj := arr[1]
	perr := &parseError{label: "EVENT"}
	if id := obj.Get("id"); id.Type == gjson.String && isHex64(id.Str) {
		perr.id = id.Str
	}
	if err := checkEventShape(obj); err != nil {
		perr.msg = err.Error()
		return nil, perr
	}
	var ev nostr.Event
	if err := easyjson.Unmarshal([]byte(obj.Raw), &ev); err != nil {
		perr.msg = "event does not decode"
		return nil, perr
	}
	if ev.Tags == nil {
		ev.Tags = nostr.Tags{}
	}
	// A fresh copy drops any extra fields the client sent: what is stored
	// and served is exactly the NIP-01 event.
	return eventMessage{event: nostr.Event{
		ID: ev.ID, PubKey: ev.PubKey, CreatedAt: ev.CreatedAt, Kind: ev.Kind,
		Tags: ev.Tags, Content: ev.Content, Sig: ev.Sig,
	}}, nil
}

// checkEventShape checks that obj has the seven NIP-01 fields with the
// right JSON types and forms. Every occurrence of a key is checked, so a
// duplicated key cannot slip a second value past it.
func checkEventShape(obj gjson.Result) error {
	var err error
	seen := 0
	obj.ForEach(func(key, v gjson.Result) bool {
		switch key.Str {
		case "id", "pubkey":
			if v.Type != gjson.String || !isHex64(v.Str) {
				err = fmt.Errorf("event %s must be 64 lowercase hex characters", key.Str)
			}
			seen |= fieldBit(key.Str)
		case "sig":
			if v.Type != gjson.String || len(v.Str) != 128 || !isLowerHex(v.Str) {
				err = errors.New("event sig must be 128 lowercase hex characters")
			}
			seen |= fieldBit(key.Str)
		case "content":
			if v.Type != gjson.String {
				err = errors.New("event content must be a string")
			}
			seen |= fieldBit(key.Str)
		case "created_at":
			if !isInteger(v, 0, 1<<53) {
				err = errors.New("event created_at must be a non-negative integer")
			}
			seen |= fieldBit(key.Str)
		case "kind":
			if !isInteger(v, 0, 65535) {
				err = errors.New("event kind must be an integer from 0 to 65535")
			}
			seen |= fieldBit(key.Str)
		case "tags":
			if !isTags(v) {
				err = errors.New("event tags must be an array of arrays of strings")
			}
			seen |= fieldBit(key.Str)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	for i, name := range eventFields {
		if seen&(1<<i) == 0 {
			return fmt.Errorf("event has no %s", name)
		}
	}
	return nil
}

var eventFields = [...]string{"id", "pubkey", "created_at", "kind", "tags", "content", "sig"}

func fieldBit(name string) int {
	for i, n := range eventFields {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

func isTags(v gjson.Result) bool {
	if !v.IsArray() {
		return false
	}
	ok := true
	v.ForEach(func(_, tag gjson.Result) bool {
		if !tag.IsArray() {
			ok = false
			return false
		}
		tag.ForEach(func(_, s gjson.Result) bool {
			ok = s.Type == gjson.String
			return ok
		})
		return ok
	})
	return ok
}

func parseReq(arr []gjson.Result, maxSubIDLength int) (any, error) {
	if len(arr) < 2 || arr[1].Type != gjson.String {
		return nil, &parseError{label: "REQ", msg: `REQ must be ["REQ",<subscription id>,<filter>...]`}
	}
	subID := arr[1].Str
	perr := &parseError{label: "REQ", subID: subID}
	if subID == "" || len(subID) > maxSubIDLength {
		perr.msg = fmt.Sprintf("subscription id must be 1 to %d characters", maxSubIDLength)
		return nil, perr
	}
	if len(arr) < 3 {
		perr.msg = "REQ needs at least one filter"
		return nil, perr
	}
	filters := make(nostr.Filters, 0, len(arr)-2)
	for i, raw := range arr[2:] {
		f, err := parseFilter(raw)
		if err != nil {
			perr.msg = fmt.Sprintf("filter %d: %v", i, err)
			return nil, perr
		}
		filters = append(filters, f)
	}
	return reqMessage{subID: subID, filters: filters}, nil
}

// parseFilter checks a filter's JSON types, then decodes it with go-nostr.
func parseFilter(raw gjson.Result) (nostr.Filter, error) {
	var f nostr.Filter
	if !raw.IsObject() {
		return f, errors.New("must be an object")
	}
	var err error
	raw.ForEach(func(key, v gjson.Result) bool {
		k := key.Str
		switch {
		case k == "ids" || k == "authors":
			err = checkStrings(v, k, isHex64, "64 lowercase hex characters")
		case k == "kinds":
			if !v.IsArray() {
				err = errors.New("kinds must be an array")
				return false
			}
			v.ForEach(func(_, n gjson.Result) bool {
				if !isInteger(n, 0, 65535) {
					err = errors.New("kinds must be integers from 0 to 65535")
				}
				return err == nil
			})
		case k == "since" || k == "until":
			if !isInteger(v, 0, 1<<53) {
				err = fmt.Errorf("%s must be a non-negative integer", k)
			}
		case k == "limit":
			if !isInteger(v, 0, 1<<31) {
				err = errors.New("limit must be a non-negative integer")
			}
		case k == "search":
			err = errors.New("search (NIP-50) is not supported")
		case strings.HasPrefix(k, "#"):
			if len(k) != 2 || !isASCIILetter(k[1]) {
				err = errors.New("tag filters must be #<one letter a-z or A-Z>")
				return false
			}
			err = checkStrings(v, k, func(string) bool { return true }, "strings")
		}
		// Other keys are ignored, as NIP-01 relays do.
		return err == nil
	})
	if err != nil {
		return f, err
	}
	if e := easyjson.Unmarshal([]byte(raw.Raw), &f); e != nil {
		return f, errors.New("does not decode")
	}
	return f, nil
}

func checkStrings(v gjson.Result, key string, ok func(string) bool, want string) error {
	if !v.IsArray() {
		return fmt.Errorf("%s must be an array", key)
	}
	var err error
	v.ForEach(func(_, s gjson.Result) bool {
		if s.Type != gjson.String || !ok(s.Str) {
			err = fmt.Errorf("%s must hold %s", key, want)
		}
		return err == nil
	})
	return err
}

// isInteger reports whether v is a JSON number holding an integer in
// [lo, hi], written without fraction or exponent.
func isInteger(v gjson.Result, lo, hi int64) bool {
	if v.Type != gjson.Number || strings.ContainsAny(v.Raw, ".eE") {
		return false
	}
	n := v.Int()
	return n >= lo && n <= hi && (n != 0 || v.Raw == "0" || v.Raw == "-0")
}

func isHex64(s string) bool { return len(s) == 64 && isLowerHex(s) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isASCIILetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
