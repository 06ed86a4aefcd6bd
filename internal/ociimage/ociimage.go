// Package ociimage is archy's one reader and writer of OCI image archives
// (the tar that `podman save --format oci-archive` writes and `podman
// load` reads). Verify checks an archive before it goes into the swarm,
// after it comes out of it, and when a developer pins it in a manifest:
// every blob's bytes match the sha256 digest in its name, and the index,
// the manifests, their configs and layers are all present with the sizes
// the descriptors give. Build makes such archives from a root filesystem
// folder, without a registry or a container engine, byte for byte the same
// on every run; tests and sample apps use it to make images that `podman
// load` takes.
package ociimage

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Media types and annotations of the OCI image spec.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// Epoch is the modification time of every file in the archives built here.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Config is the part of the image configuration a caller may set.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string // default: a standard PATH
	WorkingDir string
	Labels     map[string]string
}

// Option changes the image configuration.
type Option func(*Config)

// WithConfig sets the image configuration.
func WithConfig(c Config) Option { return func(dst *Config) { *dst = c } }

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type imageConfig struct {
	Created      time.Time `json:"created"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Config       struct {
		Entrypoint []string          `json:"Entrypoint,omitempty"`
		Cmd        []string          `json:"Cmd,omitempty"`
		Env        []string          `json:"Env,omitempty"`
		WorkingDir string            `json:"WorkingDir,omitempty"`
		Labels     map[string]string `json:"Labels,omitempty"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by"`
	} `json:"history"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType,omitempty"`
	Manifests     []Descriptor `json:"manifests"`
}

// Build writes to outPath an OCI image archive holding one image, named ref
// (e.g. "localhost/busybox:test"), whose single uncompressed layer is the
// content of rootfsDir (regular files, folders and symlinks; owner root,
// mtimes fixed). The same inputs give the same bytes. It returns the
// manifest digest ("sha256:…"). outPath is replaced atomically.
func Build(ctx context.Context, rootfsDir, outPath, ref string, opts ...Option) (string, error) {
	if ref == "" {
		return "", errors.New("build oci image: empty image name")
	}
	cfg := Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
	for _, o := range opts {
		o(&cfg)
	}
	dir := filepath.Dir(outPath)
	layer, err := os.CreateTemp(dir, ".layer-*.tar")
	if err != nil {
		return "", fmt.Errorf("build oci image %s: %w", ref, err)
	}
	defer func() { layer.Close(); os.Remove(layer.Name()) }()
	h := sha256.New()
	if err := writeLayer(ctx, rootfsDir, io.MultiWriter(layer, h)); err != nil {
		return "", fmt.Errorf("build oci image %s: layer from %s: %w", ref, rootfsDir, err)
	}
	layerSize, err := layer.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", fmt.Errorf("build oci image %s: %w", ref, err)
	}
	layerDigest := "sha256:" + hex.EncodeToString(h.Sum(nil))

	var ic imageConfig
	ic.Created = Epoch
	ic.Architecture = runtime.GOARCH
	ic.OS = "linux"
	ic.Config.Entrypoint = cfg.Entrypoint
	ic.Config.Cmd = cfg.Cmd
	ic.Config.Env = cfg.Env
	ic.Config.WorkingDir = cfg.WorkingDir
	ic.Config.Labels = cfg.Labels
	ic.RootFS.Type = "layers"
	ic.RootFS.DiffIDs = []string{layerDigest}
	ic.History = append(ic.History, struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by"`
	}{Epoch, "archy ociimage.Build"})
	configJSON, err := json.Marshal(ic)
	if err != nil {
		return "", fmt.Errorf("build oci image %s: config: %w", ref, err)
	}
	configDesc := Descriptor{MediaType: MediaTypeConfig, Digest: digest(configJSON), Size: int64(len(configJSON))}
	manifestJSON, err := json.Marshal(manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        configDesc,
		Layers:        []Descriptor{{MediaType: MediaTypeLayer, Digest: layerDigest, Size: layerSize}},
	})
	if err != nil {
		return "", fmt.Errorf("build oci image %s: manifest: %w", ref, err)
	}
	manifestDigest := digest(manifestJSON)
	indexJSON, err := json.Marshal(index{
		SchemaVersion: 2,
		MediaType:     MediaTypeIndex,
		Manifests: []Descriptor{{
			MediaType:   MediaTypeManifest,
			Digest:      manifestDigest,
			Size:        int64(len(manifestJSON)),
			Annotations: map[string]string{AnnotationRefName: ref},
		}},
	})
	if err != nil {
		return "", fmt.Errorf("build oci image %s: index: %w", ref, err)
	}

	out, err := os.CreateTemp(dir, ".oci-*.tar")
	if err != nil {
		return "", fmt.Errorf("build oci image %s: %w", ref, err)
	}
	defer func() { out.Close(); os.Remove(out.Name()) }()
	tw := tar.NewWriter(out)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: Epoch, Format: tar.FormatPAX}); err != nil {
			return "", fmt.Errorf("build oci image %s: %w", ref, err)
		}
	}
	// Blobs in digest order, then the layout files: a fixed order.
	blobs := []struct {
		digest string
		data   []byte
	}{{configDesc.Digest, configJSON}, {manifestDigest, manifestJSON}, {layerDigest, nil}}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].digest < blobs[j].digest })
	for _, b := range blobs {
		name := "blobs/sha256/" + strings.TrimPrefix(b.digest, "sha256:")
		if b.data != nil {
			if err := writeFile(tw, name, b.data); err != nil {
				return "", fmt.Errorf("build oci image %s: %w", ref, err)
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: layerSize, ModTime: Epoch, Format: tar.FormatPAX}); err != nil {
			return "", fmt.Errorf("build oci image %s: %w", ref, err)
		}
		if _, err := layer.Seek(0, io.SeekStart); err != nil {
			return "", fmt.Errorf("build oci image %s: %w", ref, err)
		}
		if _, err := io.Copy(tw, layer); err != nil {
			return "", fmt.Errorf("build oci image %s: copy layer: %w", ref, err)
		}
	}
	if err := writeFile(tw, "index.json", indexJSON); err != nil {
		return "", fmt.Errorf("build oci image %s: %w", ref, err)
	}
	if err := writeFile(tw, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return "", fmt.Errorf("build oci image %s: %w", ref, err)
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("build oci image %s: %w", ref, err)
	}
	if err := out.Sync(); err != nil {
		return "", fmt.Errorf("build oci image %s: %w", ref, err)
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("build oci image %s: %w", ref, err)
	}
	if err := os.Chmod(out.Name(), 0o644); err != nil {
		return "", fmt.Errorf("build oci image %s: %w", ref, err)
	}
	if err := os.Rename(out.Name(), outPath); err != nil {
		return "", fmt.Errorf("build oci image %s: %w", ref, err)
	}
	return manifestDigest, nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func writeFile(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: Epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// writeLayer writes rootfsDir as a tar stream in lexical path order.
func writeLayer(ctx context.Context, root string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{
			Name:    filepath.ToSlash(rel),
			ModTime: Epoch,
			Format:  tar.FormatPAX,
		}
		hdr.Mode = int64(info.Mode().Perm())
		if info.Mode()&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if info.Mode()&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if info.Mode()&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case info.Mode().IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case info.Mode()&fs.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			if hdr.Linkname, err = os.Readlink(path); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			hdr.Typeflag = tar.TypeReg
			hdr.Size = info.Size()
		default:
			return fmt.Errorf("%s: unsupported file type %s", rel, info.Mode().Type())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if n, err := io.Copy(tw, f); err != nil {
			return err
		} else if n != hdr.Size {
			return fmt.Errorf("%s changed while being read", rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
