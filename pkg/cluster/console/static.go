package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"
)

// staticFile is one embedded file with its ETag.
type staticFile struct {
	content []byte
	etag    string
}

// staticFiles serves the embedded static files with an ETag (their
// SHA-256), so that a browser revalidates them once per page (304 Not
// Modified) instead of fetching htmx and uPlot again: embedded files have
// no modification time.
type staticFiles map[string]staticFile

func newStaticFiles(fsys fs.FS) (staticFiles, error) {
	sf := staticFiles{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sf[p] = staticFile{content: b, etag: etagOf(b)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	return sf, nil
}

// etagOf is the ETag of content: its SHA-256, shortened.
func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

func (sf staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := sf[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", f.etag)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, path.Base(r.PathValue("file")), time.Time{}, bytes.NewReader(f.content))
}
