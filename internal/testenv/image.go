package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultPath is the PATH put in an image's Env when the spec sets none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// File is one entry added to an image on top of the busybox base.
type File struct {
	// Path is absolute inside the image; missing parent directories are
	// created with mode 0755.
	Path string
	// Mode holds the permission bits; fs.ModeDir makes a directory and
	// fs.ModeSymlink a symbolic link to Link.
	Mode fs.FileMode
	// Data is the content of a regular file.
	Data []byte
	// Link is the target of a symbolic link.
	Link string
	// UID and GID own the entry (0 by default).
	UID, GID int
}

// Healthcheck is Docker's image-config health check (the "Healthcheck"
// field of the config), which OCI image configs do not define.
type Healthcheck struct {
	// Test is ["NONE"], ["CMD", args...] or ["CMD-SHELL", command].
	Test []string `json:"Test,omitempty"`
	// Durations are encoded as nanoseconds, as Docker does.
	Interval    time.Duration `json:"Interval,omitempty"`
	Timeout     time.Duration `json:"Timeout,omitempty"`
	StartPeriod time.Duration `json:"StartPeriod,omitempty"`
	Retries     int           `json:"Retries,omitempty"`
}

// ImageSpec describes a test image built by BuildImage. Every field is
// optional; Env gets DefaultPath unless it sets PATH itself.
type ImageSpec struct {
	Files        []File
	Entrypoint   []string
	Cmd          []string
	Env          []string
	User         string
	WorkingDir   string
	StopSignal   string
	ExposedPorts []string // "80/tcp", "53/udp"
	Healthcheck  *Healthcheck
	Labels       map[string]string
}

// Image is a pushed test image.
type Image struct {
	// Ref is "HOST/REPO:TAG", for example "127.0.0.1:5000/web/app:latest".
	Ref string
	// Digest is the digest of the manifest, as the registry serves it.
	Digest digest.Digest
}

// imageConfig is the image's runtime config: the OCI fields plus Docker's
// Healthcheck, which containerd ignores and Berth's engine reads.
type imageConfig struct {
	ocispec.ImageConfig
	Healthcheck *Healthcheck `json:"Healthcheck,omitempty"`
}

// imageDoc is the image configuration blob.
type imageDoc struct {
	Created      time.Time      `json:"created"`
	Architecture string         `json:"architecture"`
	OS           string         `json:"os"`
	Config       imageConfig    `json:"config"`
	RootFS       ocispec.RootFS `json:"rootfs"`
}

// layer is a compressed layer with its two digests.
type layer struct {
	blob   []byte        // tar.gz
	digest digest.Digest // of blob
	diffID digest.Digest // of the uncompressed tar
}

// epoch is the timestamp of every entry and of the image, so equal specs
// give equal digests.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// baseCache holds the busybox layer, built once per process (it lives in
// processState); building it means compressing about 2 MB.
type baseCache struct {
	once  sync.Once
	layer layer
	err   error
}

// get builds the layer on first use.
func (b *baseCache) get() (layer, error) {
	b.once.Do(func() { b.layer, b.err = buildBaseLayer() })
	return b.layer, b.err
}

// BuildImage builds an image from busybox-static plus spec, pushes it to reg
// as repo (a name with an optional ":tag", default "latest") and returns
// its reference and digest. It fails the test on error.
//
// The image has two layers: a cached base with /bin/busybox, its applet
// symlinks in /bin (and where `busybox --list-full` puts them), /etc/passwd
// and /etc/group (root 0, nobody 65534, app 1000:1000), /tmp (1777); and,
// when spec.Files is not empty, a layer with those files.
func BuildImage(t testing.TB, reg *RegistryInstance, repo string, spec ImageSpec) Image {
	t.Helper()
	RequireBusyboxStatic(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	img, err := BuildAndPush(ctx, reg, repo, spec)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return img
}

// BuildAndPush is BuildImage returning its error, for tests that expect a
// push to fail (for example with a wrong password).
func BuildAndPush(ctx context.Context, reg *RegistryInstance, repo string, spec ImageSpec) (Image, error) {
	name, tag := repo, "latest"
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		name, tag = repo[:i], repo[i+1:]
	}
	base, err := process.busybox.get()
	if err != nil {
		return Image{}, err
	}
	layers := []layer{base}
	if len(spec.Files) > 0 {
		l, err := buildFilesLayer(spec.Files)
		if err != nil {
			return Image{}, err
		}
		layers = append(layers, l)
	}
	cfg, err := imageConfigJSON(spec, layers)
	if err != nil {
		return Image{}, err
	}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageConfig,
			Digest:    digest.FromBytes(cfg),
			Size:      int64(len(cfg)),
		},
	}
	for _, l := range layers {
		manifest.Layers = append(manifest.Layers, ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageLayerGzip,
			Digest:    l.digest,
			Size:      int64(len(l.blob)),
		})
	}
	mb, err := json.Marshal(manifest)
	if err != nil {
		return Image{}, fmt.Errorf("encode manifest: %w", err)
	}
	p := newPusher(reg, name)
	for _, l := range layers {
		if err := p.pushBlob(ctx, l.digest, l.blob); err != nil {
			return Image{}, err
		}
	}
	if err := p.pushBlob(ctx, manifest.Config.Digest, cfg); err != nil {
		return Image{}, err
	}
	dgst, err := p.pushManifest(ctx, tag, ocispec.MediaTypeImageManifest, mb)
	if err != nil {
		return Image{}, err
	}
	return Image{Ref: reg.Host + "/" + name + ":" + tag, Digest: dgst}, nil
}

// imageConfigJSON encodes the image configuration for spec.
func imageConfigJSON(spec ImageSpec, layers []layer) ([]byte, error) {
	env := append([]string(nil), spec.Env...)
	hasPath := false
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			hasPath = true
		}
	}
	if !hasPath {
		env = append([]string{DefaultPath}, env...)
	}
	doc := imageDoc{
		Created:      epoch,
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Config: imageConfig{
			ImageConfig: ocispec.ImageConfig{
				User:       spec.User,
				Env:        env,
				Entrypoint: spec.Entrypoint,
				Cmd:        spec.Cmd,
				WorkingDir: spec.WorkingDir,
				Labels:     spec.Labels,
				StopSignal: spec.StopSignal,
			},
			Healthcheck: spec.Healthcheck,
		},
		RootFS: ocispec.RootFS{Type: "layers"},
	}
	if len(spec.ExposedPorts) > 0 {
		doc.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.ExposedPorts {
			doc.Config.ExposedPorts[p] = struct{}{}
		}
	}
	for _, l := range layers {
		doc.RootFS.DiffIDs = append(doc.RootFS.DiffIDs, l.diffID)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode image config: %w", err)
	}
	return b, nil
}

// tarBuilder writes a layer tar, creating parent directories once.
type tarBuilder struct {
	buf  bytes.Buffer
	tw   *tar.Writer
	dirs map[string]bool
}

func newTarBuilder() *tarBuilder {
	b := &tarBuilder{dirs: map[string]bool{"/": true, ".": true}}
	b.tw = tar.NewWriter(&b.buf)
	return b
}

// parents adds the missing parent directories of p with mode 0755.
func (b *tarBuilder) parents(p string) error {
	dir := path.Dir(p)
	if b.dirs[dir] {
		return nil
	}
	if err := b.parents(dir); err != nil {
		return err
	}
	return b.dir(dir, 0o755, 0, 0)
}

func (b *tarBuilder) dir(p string, mode int64, uid, gid int) error {
	if err := b.parents(p); err != nil {
		return err
	}
	b.dirs[p] = true
	return b.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(p, "/") + "/", Mode: mode, Uid: uid, Gid: gid, ModTime: epoch, Format: tar.FormatPAX})
}

func (b *tarBuilder) file(p string, mode int64, uid, gid int, data []byte) error {
	if err := b.parents(p); err != nil {
		return err
	}
	if err := b.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(p, "/"), Mode: mode, Uid: uid, Gid: gid, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := b.tw.Write(data)
	return err
}

func (b *tarBuilder) symlink(p, target string, uid, gid int) error {
	if err := b.parents(p); err != nil {
		return err
	}
	return b.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(p, "/"), Linkname: target, Mode: 0o777, Uid: uid, Gid: gid, ModTime: epoch, Format: tar.FormatPAX})
}

// finish closes the tar and compresses it.
func (b *tarBuilder) finish() (layer, error) {
	if err := b.tw.Close(); err != nil {
		return layer{}, fmt.Errorf("write layer tar: %w", err)
	}
	raw := b.buf.Bytes()
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return layer{}, fmt.Errorf("compress layer: %w", err)
	}
	if _, err := zw.Write(raw); err != nil {
		return layer{}, fmt.Errorf("compress layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return layer{}, fmt.Errorf("compress layer: %w", err)
	}
	return layer{blob: gz.Bytes(), digest: digest.FromBytes(gz.Bytes()), diffID: digest.FromBytes(raw)}, nil
}

const (
	passwdFile = "root:x:0:0:root:/root:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
		"app:x:1000:1000:app:/home/app:/bin/sh\n"
	groupFile = "root:x:0:\nnobody:x:65534:\napp:x:1000:\n"
)

// buildBaseLayer makes the busybox layer from the host's busybox-static.
func buildBaseLayer() (layer, error) {
	if err := checkStaticBusybox(busyboxPath); err != nil {
		return layer{}, err
	}
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return layer{}, fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.Command(busyboxPath, "--list-full").Output()
	if err != nil {
		return layer{}, fmt.Errorf("list busybox applets: %w", err)
	}
	b := newTarBuilder()
	steps := []func() error{
		func() error { return b.dir("/bin", 0o755, 0, 0) },
		func() error { return b.file("/bin/busybox", 0o755, 0, 0, bin) },
		func() error { return b.dir("/etc", 0o755, 0, 0) },
		func() error { return b.file("/etc/passwd", 0o644, 0, 0, []byte(passwdFile)) },
		func() error { return b.file("/etc/group", 0o644, 0, 0, []byte(groupFile)) },
		func() error { return b.dir("/tmp", 0o1777, 0, 0) },
		func() error { return b.dir("/root", 0o700, 0, 0) },
		func() error { return b.dir("/home/app", 0o755, 1000, 1000) },
		func() error { return b.dir("/dev", 0o755, 0, 0) },
		func() error { return b.dir("/proc", 0o555, 0, 0) },
		func() error { return b.dir("/sys", 0o555, 0, 0) },
		func() error { return b.dir("/var/run", 0o755, 0, 0) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return layer{}, fmt.Errorf("build base layer: %w", err)
		}
	}
	links := map[string]bool{}
	for _, full := range strings.Fields(string(out)) {
		full = "/" + strings.TrimPrefix(full, "/")
		links["/bin/"+path.Base(full)] = true
		links[full] = true
	}
	delete(links, "/bin/busybox")
	sorted := make([]string, 0, len(links))
	for l := range links {
		sorted = append(sorted, l)
	}
	sort.Strings(sorted)
	for _, l := range sorted {
		if err := b.symlink(l, "/bin/busybox", 0, 0); err != nil {
			return layer{}, fmt.Errorf("build base layer: link %s: %w", l, err)
		}
	}
	return b.finish()
}

// buildFilesLayer makes the layer with the spec's files.
func buildFilesLayer(files []File) (layer, error) {
	b := newTarBuilder()
	for _, f := range files {
		if !path.IsAbs(f.Path) {
			return layer{}, fmt.Errorf("image file %q: path must be absolute", f.Path)
		}
		p := path.Clean(f.Path)
		perm := int64(f.Mode.Perm())
		if f.Mode&fs.ModeSticky != 0 {
			perm |= 0o1000
		}
		var err error
		switch {
		case f.Mode&fs.ModeDir != 0:
			err = b.dir(p, perm, f.UID, f.GID)
		case f.Mode&fs.ModeSymlink != 0 || f.Link != "":
			err = b.symlink(p, f.Link, f.UID, f.GID)
		default:
			if perm == 0 {
				perm = 0o644
			}
			err = b.file(p, perm, f.UID, f.GID, f.Data)
		}
		if err != nil {
			return layer{}, fmt.Errorf("image file %s: %w", p, err)
		}
	}
	return b.finish()
}
