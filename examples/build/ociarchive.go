package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/archy-node/archy/internal/atomicfile"
)

// buildImage writes rootfs as a one-layer OCI archive tagged ref and returns
// the image's manifest digest.
//
// TODO(lead): once internal/ociimage lands (branch podman), replace this
// with ociimage.Build, which has the same signature, and delete the writer
// below.
var buildImage = writeOCIArchive

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// writeOCIArchive is a minimal deterministic OCI image-layout writer: the
// same rootfs and ref give the same bytes (sorted entries, uid/gid 0, zero
// times, no compression).
func writeOCIArchive(ctx context.Context, rootfs, out, ref string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	layer, err := tarTree(rootfs)
	if err != nil {
		return "", fmt.Errorf("write layer of %s: %w", ref, err)
	}
	layerDesc := describe(mediaLayer, layer)
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Env": []string{"PATH=/bin"}, "WorkingDir": "/"},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDesc.Digest}},
	})
	if err != nil {
		return "", err
	}
	configDesc := describe(mediaConfig, config)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        configDesc,
		"layers":        []descriptor{layerDesc},
	})
	if err != nil {
		return "", err
	}
	manifestDesc := describe(mediaManifest, manifest)
	manifestDesc.Annotations = map[string]string{"org.opencontainers.image.ref.name": ref}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []descriptor{manifestDesc},
	})
	if err != nil {
		return "", err
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if data == nil {
			hdr.Typeflag, hdr.Mode, hdr.Name = tar.TypeDir, 0o755, name+"/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	blobs := []struct {
		d    descriptor
		data []byte
	}{{configDesc, config}, {layerDesc, layer}, {manifestDesc, manifest}}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].d.Digest < blobs[j].d.Digest })
	steps := []func() error{
		func() error { return add("blobs", nil) },
		func() error { return add("blobs/sha256", nil) },
	}
	for _, b := range blobs {
		steps = append(steps, func() error { return add("blobs/sha256/"+b.d.Digest[len("sha256:"):], b.data) })
	}
	steps = append(steps,
		func() error { return add("index.json", index) },
		func() error { return add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)) },
		tw.Close,
	)
	for _, step := range steps {
		if err := step(); err != nil {
			return "", fmt.Errorf("write archive of %s: %w", ref, err)
		}
	}
	if err := atomicfile.Write(out, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("write archive of %s: %w", ref, err)
	}
	return manifestDesc.Digest, nil
}

func describe(mediaType string, data []byte) descriptor {
	sum := sha256.Sum256(data)
	return descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}
}

// tarTree tars dir with sorted names, numeric owner 0 and zero times.
func tarTree(dir string) ([]byte, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, path := range paths {
		info, err := os.Lstat(path)
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return nil, err
		}
		link := ""
		if info.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return nil, err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return nil, err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
		hdr.PAXRecords = nil
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
