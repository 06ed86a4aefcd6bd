package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
)

// execArchy runs the archy command line in-process as main does, and
// returns what it wrote and its error (non-nil means exit status 1).
func execArchy(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, &out, &errb)
	if err != nil && !errors.Is(err, errSilent) {
		errb.WriteString("archy: " + err.Error() + "\n")
	}
	return out.String(), errb.String(), err
}

// testApp writes a key file and an app folder whose manifest that key
// publishes, and returns both paths.
func testApp(t testing.TB, seed byte, extra string) (keyFile, dir string) {
	t.Helper()
	k, err := did.FromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	keyFile = filepath.Join(tmp, "key.json")
	if err := k.Save(keyFile); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(tmp, "app")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := `schema: archy.app/v1
id: org.example.hello
name: Hello
version: 1.0.0
publisher: ` + k.DID() + `
containers:
  - name: web
    image:
      ref: localhost/hello:1
      cid: ` + cas.Sum([]byte("hello image")).String() + `
      digest: "sha256:` + strings.Repeat("0f", 32) + `"
    command: [httpd, -f, -p, "8080"]
    ports: [{container: 8080, host: 18080}]
    health: {http: {port: 8080, path: /}}
` + extra
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyFile, dir
}

func TestAppHelp(t *testing.T) {
	for _, sub := range []string{"validate", "cid", "sign", "verify"} {
		t.Run(sub, func(t *testing.T) {
			out, _, err := execArchy(t, "app", sub, "--help")
			if err != nil || !strings.Contains(out, "Usage:") || !strings.Contains(out, "archy app "+sub) {
				t.Fatalf("help: %v\n%s", err, out)
			}
		})
	}
}

func TestAppValidate(t *testing.T) {
	_, good := testApp(t, 1, "")
	_, bad := testApp(t, 2, "    privileged: true\n    volumes: [{path: /var/run/docker.sock, mount: /var/run/docker.sock}]\n")

	out, errOut, err := execArchy(t, "app", "validate", good)
	if err != nil || !strings.Contains(out, good+": ok org.example.hello 1.0.0 bafkr4i") || errOut != "" {
		t.Fatalf("valid app: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}

	out, errOut, err = execArchy(t, "app", "validate", good, bad)
	if err == nil {
		t.Fatal("validate with a bad app exits 0")
	}
	for _, want := range []string{
		"containers[0].privileged: privileged containers are refused",
		"containers[0].volumes[0].path: \"/var/run/docker.sock\" is, holds or lies in a container engine socket",
		"containers[0].volumes[0].mount: \"/var/run/docker.sock\" is a container engine socket path",
		"1 of 2 manifest(s) failed validation",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, good+": ok") || strings.Contains(out, bad) {
		t.Errorf("stdout should list only the good app:\n%s", out)
	}

	out, _, err = execArchy(t, "app", "validate", "--json", good, bad, filepath.Join(bad, "missing"))
	if err == nil {
		t.Fatal("validate --json with bad apps exits 0")
	}
	var res []struct {
		Path     string `json:"path"`
		OK       bool   `json:"ok"`
		CID      string `json:"cid"`
		Error    string `json:"error"`
		Problems []struct {
			Path string `json:"path"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if len(res) != 3 || !res[0].OK || res[0].CID == "" || res[1].OK || len(res[1].Problems) != 3 || res[2].OK || res[2].Error == "" {
		t.Fatalf("--json results: %+v", res)
	}
	if res[1].Problems[0].Path != "containers[0].volumes[0].path" && res[1].Problems[0].Path != "containers[0].privileged" {
		t.Errorf("problem path %q", res[1].Problems[0].Path)
	}

	if _, errOut, err := execArchy(t, "app", "validate"); err == nil || !strings.Contains(errOut, "requires at least 1 arg") {
		t.Errorf("no path: %v %s", err, errOut)
	}
}

func TestAppCID(t *testing.T) {
	_, dir := testApp(t, 1, "")
	out, _, err := execArchy(t, "app", "cid", dir)
	if err != nil {
		t.Fatal(err)
	}
	c := strings.TrimSpace(out)
	if _, err := cas.Parse(c); err != nil || !strings.HasPrefix(c, "bafkr4i") {
		t.Fatalf("cid %q: %v", c, err)
	}
	// The same manifest in JSON has the same CID.
	jsonDir := t.TempDir()
	y, _ := os.ReadFile(filepath.Join(dir, "manifest.yaml"))
	k, _ := did.FromSeed(bytes.Repeat([]byte{1}, 32))
	j := `{"containers":[{"health":{"http":{"path":"/","port":8080}},"ports":[{"host":18080,"container":8080}],
"command":["httpd","-f","-p","8080"],"name":"web","image":{"digest":"sha256:` + strings.Repeat("0f", 32) + `",
"cid":"` + cas.Sum([]byte("hello image")).String() + `","ref":"localhost/hello:1"}}],
"version":"1.0.0","publisher":"` + k.DID() + `","name":"Hello","id":"org.example.hello","schema":"archy.app/v1"}`
	if !strings.Contains(string(y), k.DID()) {
		t.Fatal("test app has another publisher")
	}
	if err := os.WriteFile(filepath.Join(jsonDir, "manifest.json"), []byte(j), 0o644); err != nil {
		t.Fatal(err)
	}
	out2, _, err := execArchy(t, "app", "cid", filepath.Join(jsonDir, "manifest.json"))
	if err != nil || strings.TrimSpace(out2) != c {
		t.Fatalf("json cid %q (%v), want %q", out2, err, c)
	}
	out3, _, err := execArchy(t, "app", "cid", "--json", dir)
	if err != nil || !strings.Contains(out3, `"cid": "`+c+`"`) {
		t.Fatalf("cid --json: %v %s", err, out3)
	}
	if _, errOut, err := execArchy(t, "app", "cid", t.TempDir()); err == nil || !strings.Contains(errOut, "holds none of") {
		t.Fatalf("cid of an empty folder: %v %s", err, errOut)
	}
}

func TestAppSignVerify(t *testing.T) {
	key, dir := testApp(t, 1, "")
	out, errOut, err := execArchy(t, "app", "sign", dir, "--key", key)
	if err != nil {
		t.Fatalf("sign: %v %s", err, errOut)
	}
	signed := filepath.Join(dir, "manifest.signed.json")
	cidOut, _, _ := execArchy(t, "app", "cid", dir)
	c := strings.TrimSpace(cidOut)
	k, _ := did.LoadKey(key)
	if !strings.Contains(out, "cid: "+c) || !strings.Contains(out, signed) {
		t.Fatalf("sign output:\n%s", out)
	}

	out, errOut, err = execArchy(t, "app", "verify", signed)
	if err != nil {
		t.Fatalf("verify: %v %s", err, errOut)
	}
	if !strings.Contains(out, "signer: "+k.DID()) || !strings.Contains(out, "cid: "+c) {
		t.Fatalf("verify output:\n%s", out)
	}
	out, _, err = execArchy(t, "app", "verify", "--json", signed)
	var v struct{ Signer, CID string }
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Signer != k.DID() || v.CID != c {
		t.Fatalf("verify --json: %v %s", err, out)
	}
	if _, errOut, err := execArchy(t, "app", "verify", "--signer", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", signed); err == nil || !strings.Contains(errOut, "not by") {
		t.Fatalf("verify --signer other: %v %s", err, errOut)
	}

	// --out - writes the same envelope to stdout.
	stdoutEnv, _, err := execArchy(t, "app", "sign", dir, "--key", key, "--out", "-")
	fileEnv, _ := os.ReadFile(signed)
	if err != nil || stdoutEnv != string(fileEnv) {
		t.Fatalf("sign --out -: %v\n%s\n%s", err, stdoutEnv, fileEnv)
	}

	t.Run("not the publisher", func(t *testing.T) {
		other, _ := testApp(t, 9, "")
		_, errOut, err := execArchy(t, "app", "sign", dir, "--key", other, "--out", filepath.Join(t.TempDir(), "x.json"))
		if err == nil || !strings.Contains(errOut, "not signed by its publisher") {
			t.Fatalf("sign with another key: %v %s", err, errOut)
		}
	})
	t.Run("invalid manifest", func(t *testing.T) {
		key, bad := testApp(t, 3, "    network: host\n")
		_, errOut, err := execArchy(t, "app", "sign", bad, "--key", key)
		if err == nil || !strings.Contains(errOut, "containers[0].network") {
			t.Fatalf("sign an invalid manifest: %v %s", err, errOut)
		}
		if _, err := os.Stat(filepath.Join(bad, "manifest.signed.json")); err == nil {
			t.Fatal("an invalid manifest was signed")
		}
	})
	t.Run("no key", func(t *testing.T) {
		if _, errOut, err := execArchy(t, "app", "sign", dir); err == nil || !strings.Contains(errOut, "--key is required") {
			t.Fatalf("sign without --key: %v %s", err, errOut)
		}
	})
}

// TestAppVerifyTampered flips every byte of a signed manifest, class by
// class, and expects verify to fail each time.
func TestAppVerifyTampered(t *testing.T) {
	key, dir := testApp(t, 1, "")
	env, _, err := execArchy(t, "app", "sign", dir, "--key", key, "--out", "-")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(env)
	var e struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(data, &e); err != nil || len(e.Signatures) != 1 {
		t.Fatalf("envelope: %v", err)
	}
	span := func(value string) [2]int {
		i := bytes.Index(data, []byte(`"`+value+`"`))
		if i < 0 {
			t.Fatalf("envelope lacks %q", value)
		}
		return [2]int{i + 1, i + 1 + len(value)}
	}
	classes := map[string][2]int{
		"payload":     span(e.Payload),
		"sig":         span(e.Signatures[0].Sig),
		"payloadType": span(e.PayloadType),
		"keyid":       span(e.Signatures[0].KeyID),
		"whole file":  {0, len(data)},
	}
	file := filepath.Join(t.TempDir(), "signed.json")
	verify := func(b []byte) error {
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := execArchy(t, "app", "verify", file)
		return err
	}
	if err := verify(data); err != nil {
		t.Fatalf("untouched envelope: %v", err)
	}
	for name, s := range classes {
		t.Run(name, func(t *testing.T) {
			masks := []byte{0x01}
			if name != "payload" && name != "whole file" {
				masks = append(masks, 0x02, 0x20, 0x80)
			}
			for i := s[0]; i < s[1]; i++ {
				for _, m := range masks {
					b := bytes.Clone(data)
					b[i] ^= m
					if err := verify(b); err == nil {
						t.Fatalf("byte %d flipped (%q→%q) still verifies", i, data[i], b[i])
					}
				}
			}
		})
	}
	t.Run("appended bytes", func(t *testing.T) {
		for _, tail := range []string{"\n", " ", "{}", "\r\n"} {
			if err := verify(append(bytes.Clone(data), tail...)); err == nil {
				t.Fatalf("envelope with %q appended still verifies", tail)
			}
		}
	})
}
