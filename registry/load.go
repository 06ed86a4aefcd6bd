package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	cid "github.com/ipfs/go-cid"
	"go.yaml.in/yaml/v3"

	"github.com/archy-node/archy/cas"
)

// ManifestFiles are the file names Load looks for in an app folder; a
// folder must hold exactly one of them.
var ManifestFiles = []string{"manifest.yaml", "manifest.yml", "manifest.json"}

// Loaded is an authored manifest, parsed, completed from its image
// archives, validated, and given its canonical bytes and CID.
type Loaded struct {
	Manifest *Manifest
	// Payload is the canonical (RFC 8785) bytes: what is signed and hashed.
	Payload []byte
	// CID is cas.Sum(Payload).
	CID cid.Cid
	// Dir is the app folder (absolute); File the manifest file in it.
	Dir  string
	File string
	// Archives maps a container name to the absolute path of its image's
	// OCI archive, for the containers whose image names one.
	Archives map[string]string
}

// Load reads an app folder (holding manifest.yaml, manifest.yml or
// manifest.json) or a manifest file, parses it strictly (YAML or JSON, no
// unknown fields, no duplicate keys, at most MaxManifestSize bytes), fills
// each image's cid and digest from its archive, and validates the result.
// Problems with the manifest itself come back as a *ValidationError
// (wrapped with the file name); I/O problems as other errors.
func Load(p string) (*Loaded, error) {
	file, err := findManifest(p)
	if err != nil {
		return nil, err
	}
	data, err := readFileCapped(file, MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	m, err := ParseManifest(data, formatOf(file))
	if err != nil {
		return nil, inFile(file, err)
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", file, err)
	}
	l := &Loaded{Manifest: m, Dir: dir, File: file, Archives: map[string]string{}}
	var ps problems
	for i := range m.Containers {
		l.resolveArchive(&ps, fmt.Sprintf("containers[%d].image", i), &m.Containers[i])
	}
	if err := m.Validate(); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return nil, fmt.Errorf("load %s: %w", file, err)
		}
		ps = append(ps, ve.Problems...)
	}
	if err := ps.err(); err != nil {
		return nil, inFile(file, err)
	}
	if l.Payload, err = Canonical(m); err != nil {
		return nil, fmt.Errorf("load %s: %w", file, err)
	}
	l.CID = cas.Sum(l.Payload)
	return l, nil
}

// inFile records the manifest file in a *ValidationError.
func inFile(file string, err error) error {
	var ve *ValidationError
	if errors.As(err, &ve) {
		ve.File = file
		return ve
	}
	return fmt.Errorf("load %s: %w", file, err)
}

// findManifest returns the manifest file p names, or the one in folder p.
func findManifest(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("load manifest: %w", err)
	}
	if !fi.IsDir() {
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("load manifest %s: not a regular file", p)
		}
		return p, nil
	}
	var found []string
	for _, n := range ManifestFiles {
		f := filepath.Join(p, n)
		if fi, err := os.Stat(f); err == nil {
			if !fi.Mode().IsRegular() {
				return "", fmt.Errorf("load manifest %s: not a regular file", f)
			}
			found = append(found, f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("load manifest: %w", err)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("load manifest: %s holds none of %s", p, strings.Join(ManifestFiles, ", "))
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("load manifest: %s holds %s: keep only one", p, strings.Join(found, " and "))
}

func formatOf(file string) string {
	if strings.EqualFold(filepath.Ext(file), ".json") {
		return "json"
	}
	return "yaml"
}

// resolveArchive finds a container's image archive inside the app folder,
// computes its cid and digest, and checks them against any given.
func (l *Loaded) resolveArchive(ps *problems, p string, c *Container) {
	im := &c.Image
	if im.Archive == "" || checkRelPath(im.Archive) != "" {
		return // nothing to do, or Validate reports the path
	}
	realDir, err := filepath.EvalSymlinks(l.Dir)
	if err != nil {
		ps.add(p+".archive", "cannot resolve the app folder: %v", err)
		return
	}
	real, err := filepath.EvalSymlinks(filepath.Join(l.Dir, filepath.FromSlash(im.Archive)))
	if err != nil {
		ps.add(p+".archive", "%s: %v", im.Archive, errors.Unwrap(err))
		return
	}
	if rel, err := filepath.Rel(realDir, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		ps.add(p+".archive", "%s resolves (through a symlink) outside the app folder", im.Archive)
		return
	}
	if fi, err := os.Stat(real); err != nil || !fi.Mode().IsRegular() {
		ps.add(p+".archive", "%s is not a regular file", im.Archive)
		return
	}
	sum, err := ReadOCIArchive(real)
	if err != nil {
		ps.add(p+".archive", "%s: %v", im.Archive, err)
		return
	}
	if im.CID != "" && im.CID != sum.CID.String() {
		ps.add(p+".cid", "%s does not match the archive's %s", clip(im.CID), sum.CID)
	}
	if im.Digest != "" && im.Digest != sum.Digest {
		ps.add(p+".digest", "%s does not match the archive's %s", clip(im.Digest), sum.Digest)
	}
	if im.Size != 0 && im.Size != sum.Size {
		ps.add(p+".size", "%d does not match the archive's %d bytes", im.Size, sum.Size)
	}
	im.CID, im.Digest, im.Size = sum.CID.String(), sum.Digest, sum.Size
	l.Archives[c.Name] = real
}

// ParseManifest parses authored manifest bytes, format "yaml" or "json",
// strictly: unknown fields, duplicate keys, YAML merge keys, tags other
// than the core schema's and more than one YAML document are refused, each
// problem naming its field path. It does not validate.
func ParseManifest(data []byte, format string) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, &ValidationError{Problems: []Problem{{Msg: fmt.Sprintf("%d bytes, over the %d-byte cap", len(data), MaxManifestSize)}}}
	}
	data = bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))
	if format == "yaml" {
		j, err := yamlToJSON(data)
		if err != nil {
			return nil, err
		}
		data = j
	}
	var m Manifest
	if err := json.Unmarshal(data, &m, json.RejectUnknownMembers(true), json.MatchCaseInsensitiveNames(false)); err != nil {
		return nil, &ValidationError{Problems: []Problem{decodeProblem(err, data, format)}}
	}
	return &m, nil
}

// decodeProblem turns a json v2 error into a Problem naming the field.
func decodeProblem(err error, data []byte, format string) Problem {
	var se *json.SemanticError
	if errors.As(err, &se) {
		p := pointerPath(se.JSONPointer)
		if errors.Is(se.Err, json.ErrUnknownName) {
			msg := "unknown field (not part of " + Schema + ")"
			if s := suggestField(se.JSONPointer); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
			}
			return Problem{Path: p, Msg: msg}
		}
		want := kindOf(se.GoType)
		got := "a JSON " + kindName(se.JSONKind)
		if format == "yaml" {
			got = "YAML " + kindName(se.JSONKind)
		}
		if len(se.JSONValue) > 0 && len(se.JSONValue) < 60 {
			got += " " + string(se.JSONValue)
		}
		msg := fmt.Sprintf("must be %s, not %s", want, got)
		if want == "text" && format == "yaml" {
			msg += " (quote it)"
		}
		if se.Err != nil && want == "" {
			msg = se.Err.Error()
		}
		return Problem{Path: p, Msg: msg}
	}
	var sy *jsontext.SyntacticError
	if errors.As(err, &sy) {
		line, col := lineCol(data, sy.ByteOffset)
		msg := fmt.Sprintf("line %d column %d: %v", line, col, sy.Err)
		if errors.Is(sy.Err, jsontext.ErrDuplicateName) {
			msg = "key given twice"
		}
		if format == "yaml" {
			msg = fmt.Sprintf("%v", sy.Err)
		}
		return Problem{Path: pointerPath(sy.JSONPointer), Msg: msg}
	}
	return Problem{Msg: err.Error()}
}

func lineCol(data []byte, off int64) (int, int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	return line, int(off) - bytes.LastIndexByte(before, '\n')
}

func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "mapping"
	case '[':
		return "list"
	}
	return "value"
}

func kindOf(t reflect.Type) string {
	if t == nil {
		return ""
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "text"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	}
	return ""
}

// pointerPath turns a JSON pointer (/containers/1/volumes/0/path) into a
// field path (containers[1].volumes[0].path).
func pointerPath(ptr jsontext.Pointer) string {
	var b strings.Builder
	for tok := range ptr.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(clip(tok))
	}
	return b.String()
}

// suggestField names the schema field an unknown key was probably meant
// to be ("ID" → id, "depends-on" → depends_on).
func suggestField(ptr jsontext.Pointer) string {
	var toks []string
	for tok := range ptr.Tokens() {
		toks = append(toks, tok)
	}
	if len(toks) == 0 {
		return ""
	}
	t := reflect.TypeFor[Manifest]()
	for _, tok := range toks[:len(toks)-1] {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if _, err := strconv.Atoi(tok); err == nil {
			continue
		}
		if t.Kind() != reflect.Struct {
			return ""
		}
		f, ok := fieldByTag(t, tok)
		if !ok {
			return ""
		}
		t = f.Type
	}
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	want := strings.ReplaceAll(strings.ToLower(toks[len(toks)-1]), "-", "_")
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == want || strings.ReplaceAll(name, "_", "") == strings.ReplaceAll(want, "_", "") {
			return name
		}
	}
	return ""
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		n, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if n == name {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// yamlLimits bound what one YAML manifest may expand to through aliases.
const (
	maxYAMLNodes = 100_000
	maxYAMLDepth = 64
)

// yamlToJSON converts one YAML document to JSON, refusing duplicate keys,
// merge keys, non-core tags, NaN and infinities, and alias bombs.
func yamlToJSON(data []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ValidationError{Problems: []Problem{{Msg: "empty manifest"}}}
		}
		return nil, &ValidationError{Problems: []Problem{{Msg: "YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &ValidationError{Problems: []Problem{{Msg: "more than one YAML document: a manifest is one document"}}}
	}
	var out bytes.Buffer
	enc := jsontext.NewEncoder(&out)
	c := &yamlConv{enc: enc}
	if err := c.emit(&doc, "", 0); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

type yamlConv struct {
	enc   *jsontext.Encoder
	nodes int
}

func (c *yamlConv) fail(n *yaml.Node, p, format string, a ...any) error {
	return &ValidationError{Problems: []Problem{{Path: p, Msg: fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, a...)}}}
}

func (c *yamlConv) emit(n *yaml.Node, p string, depth int) error {
	c.nodes++
	if c.nodes > maxYAMLNodes || depth > maxYAMLDepth {
		return c.fail(n, p, "the document expands to too many nodes (aliases?)")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return c.fail(n, p, "empty manifest")
		}
		return c.emit(n.Content[0], p, depth+1)
	case yaml.AliasNode:
		return c.emit(n.Alias, p, depth+1)
	case yaml.SequenceNode:
		if err := c.enc.WriteToken(jsontext.BeginArray); err != nil {
			return err
		}
		for i, e := range n.Content {
			if err := c.emit(e, fmt.Sprintf("%s[%d]", p, i), depth+1); err != nil {
				return err
			}
		}
		return c.enc.WriteToken(jsontext.EndArray)
	case yaml.MappingNode:
		if err := c.enc.WriteToken(jsontext.BeginObject); err != nil {
			return err
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return c.fail(k, p, "a key must be plain text")
			}
			kp := k.Value
			if p != "" {
				kp = p + "." + clip(k.Value)
			}
			if k.ShortTag() == "!!merge" {
				return c.fail(k, kp, "merge keys (<<) are not supported: write the fields out")
			}
			if line, dup := seen[k.Value]; dup {
				return c.fail(k, kp, "key given twice (first on line %d)", line)
			}
			seen[k.Value] = k.Line
			if err := c.enc.WriteToken(jsontext.String(k.Value)); err != nil {
				return c.fail(k, kp, "%v", err)
			}
			if err := c.emit(v, kp, depth+1); err != nil {
				return err
			}
		}
		return c.enc.WriteToken(jsontext.EndObject)
	case yaml.ScalarNode:
		return c.scalar(n, p)
	}
	return c.fail(n, p, "unsupported YAML node")
}

func (c *yamlConv) scalar(n *yaml.Node, p string) error {
	var tok jsontext.Token
	switch n.ShortTag() {
	case "!!str", "!!timestamp", "!!binary":
		tok = jsontext.String(n.Value)
	case "!!null":
		tok = jsontext.Null
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return c.fail(n, p, "%v", err)
		}
		tok = jsontext.Bool(b)
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			return c.fail(n, p, "integer %s is out of range", clip(n.Value))
		}
		tok = jsontext.Int(i)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return c.fail(n, p, "%s is not a finite number", clip(n.Value))
		}
		tok = jsontext.Float(f)
	default:
		return c.fail(n, p, "YAML tag %s is not supported", clip(n.Tag))
	}
	if err := c.enc.WriteToken(tok); err != nil {
		return c.fail(n, p, "%v", err)
	}
	return nil
}
