// Package local keeps blobs in a folder on this machine and serves them
// through signed URLs, so that `make run` needs no cloud account. Its Bucket
// implements storage.Bucket.
//
// Under the folder, objects/<key> holds an object's bytes, meta/<key> a small
// JSON record of its content type and SHA-256, and tmp/ the uploads in
// progress. The records live in a tree of their own rather than beside each
// object because every name is a valid key, "photo.png.meta" included.
// Uploads are written into tmp/, on the same filesystem, and renamed into
// place, so that readers never see half an object.
//
// Unlike GCS, a key cannot be both an object and a folder of other objects
// ("a" and "a/b"); Put reports an error for the second. The service's keys
// never do this. The folder is trusted: what others place in it (symbolic
// links, for one) is served as it is.
package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/storage"
)

// minKeyBytes is the shortest signing key New accepts: HMAC-SHA256 is only
// as strong as its key, up to the hash's 32 bytes.
const minKeyBytes = 32

// staleUpload is how old a file in tmp/ must be before New removes it as
// left behind by a crash. It is long enough that no upload still running in
// another process sharing the folder is that old.
const staleUpload = 24 * time.Hour

// Config says where a Bucket keeps its files and how it signs URLs.
type Config struct {
	// Dir is the folder that holds everything; New creates it.
	Dir string
	// SigningKey signs URLs with HMAC-SHA256; at least 32 bytes. It must
	// stay the same across restarts, or the URLs already handed out stop
	// working.
	SigningKey []byte
	// BaseURL is where Handler is reachable from clients, e.g.
	// http://localhost:8080/blobs. Signed URLs are BaseURL/<key>?….
	BaseURL string
	// MaxPutBytes caps an upload through a signed PUT URL. Put itself has no
	// cap: its callers are the service's own code.
	MaxPutBytes int64
	// Log receives the causes of the failures Handler answers with 500; nil
	// discards them.
	Log *slog.Logger
	// Clock decides when signed URLs expire and which uploads are stale;
	// nil means the machine's clock.
	Clock clock.Clock
}

// Bucket is a storage.Bucket in a local folder. Its methods are safe for
// concurrent use.
type Bucket struct {
	objects, meta, tmp string
	signingKey         []byte
	baseURL            string
	basePath           string
	maxPutBytes        int64
	log                *slog.Logger
	now                func() time.Time

	// mu makes the two renames that switch an object and its record look
	// like one to this process's readers, and keeps Delete's removal of
	// empty folders from racing a Put into them. Other processes sharing
	// the folder still never see half an object, but may briefly see a new
	// record beside the old bytes.
	mu sync.RWMutex
}

// New returns a Bucket keeping its objects under cfg.Dir, creating the
// folders it needs and removing uploads a crash left behind.
func New(cfg Config) (*Bucket, error) {
	if cfg.Dir == "" {
		return nil, errors.New("local storage: no folder given")
	}
	if len(cfg.SigningKey) < minKeyBytes {
		return nil, fmt.Errorf("local storage: signing key has %d bytes, want at least %d", len(cfg.SigningKey), minKeyBytes)
	}
	if cfg.MaxPutBytes <= 0 {
		return nil, fmt.Errorf("local storage: max upload size %d is not positive", cfg.MaxPutBytes)
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("local storage: base URL %q is not an absolute http(s) URL without query", cfg.BaseURL)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("local storage: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bucket{
		objects:     filepath.Join(dir, "objects"),
		meta:        filepath.Join(dir, "meta"),
		tmp:         filepath.Join(dir, "tmp"),
		signingKey:  slices.Clone(cfg.SigningKey),
		baseURL:     strings.TrimSuffix(cfg.BaseURL, "/"),
		basePath:    strings.TrimSuffix(base.Path, "/") + "/",
		maxPutBytes: cfg.MaxPutBytes,
		log:         log,
		now:         clock.Or(cfg.Clock).Now,
	}
	for _, d := range []string{b.objects, b.meta, b.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("local storage: %w", err)
		}
	}
	if err := b.removeStaleUploads(); err != nil {
		return nil, err
	}
	return b, nil
}

// Name returns "local".
func (b *Bucket) Name() string { return "local" }

// Put streams r into the object under key, replacing any object there. The
// object appears only once r is fully read; if r or ctx fails, nothing
// changes. An empty opts.ContentType is stored as application/octet-stream.
// opts.CacheControl is not kept: Handler's caching follows the expiry of the
// URL it serves.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (storage.ObjectInfo, error) {
	objPath, metaPath, err := b.paths(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	ct := opts.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}

	dataTmp, size, sum, err := b.writeTemp(ctxReader{ctx, r})
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("local storage: put %q: %w", key, err)
	}
	rec, err := json.Marshal(record{ContentType: ct, SHA256: sum})
	if err != nil {
		os.Remove(dataTmp)
		return storage.ObjectInfo{}, fmt.Errorf("local storage: put %q: %w", key, err)
	}
	metaTmp, _, _, err := b.writeTemp(bytes.NewReader(rec))
	if err != nil {
		os.Remove(dataTmp)
		return storage.ObjectInfo{}, fmt.Errorf("local storage: put %q: %w", key, err)
	}

	b.mu.Lock()
	fi, err := commit(dataTmp, objPath, metaTmp, metaPath)
	b.mu.Unlock()
	if err != nil {
		os.Remove(dataTmp)
		os.Remove(metaTmp)
		return storage.ObjectInfo{}, fmt.Errorf("local storage: put %q: %w", key, err)
	}
	return storage.ObjectInfo{Key: key, Size: size, ContentType: ct, ETag: etag(sum), Updated: fi.ModTime().UTC()}, nil
}

// writeTemp copies r into a new file in tmp/ and returns its path, size and
// hex SHA-256. On failure it leaves no file behind.
func (b *Bucket) writeTemp(r io.Reader) (path string, size int64, sum string, err error) {
	f, err := os.CreateTemp(b.tmp, "upload-*")
	if err != nil {
		return "", 0, "", err
	}
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, "", err
	}
	return f.Name(), size, hex.EncodeToString(h.Sum(nil)), nil
}

// commit moves a finished upload and its record into place and returns the
// object's file info. The record goes first: the object file decides
// whether a key exists, so a crash between the renames leaves a new key
// absent rather than present without its record. b.mu must be held.
func commit(dataTmp, objPath, metaTmp, metaPath string) (fs.FileInfo, error) {
	if err := os.MkdirAll(filepath.Dir(objPath), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(objPath); err == nil && fi.IsDir() {
		return nil, errors.New("the key is a folder of other objects")
	}
	if err := os.MkdirAll(filepath.Dir(metaPath), 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(metaTmp, metaPath); err != nil {
		return nil, err
	}
	if err := os.Rename(dataTmp, objPath); err != nil {
		return nil, err
	}
	return os.Stat(objPath)
}

// Open reads length bytes of the object from offset (length < 0: to the
// end); the ObjectInfo describes the whole object. An offset past the end is
// an error; an offset at the end reads nothing. Returns storage.ErrNotFound
// for a missing key.
func (b *Bucket) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	f, info, err := b.open(key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	if offset < 0 || offset > info.Size {
		f.Close()
		return nil, storage.ObjectInfo{}, fmt.Errorf("local storage: open %q: offset %d outside the object's %d bytes", key, offset, info.Size)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, storage.ObjectInfo{}, fmt.Errorf("local storage: open %q: %w", key, err)
	}
	var r io.Reader = f
	if length >= 0 {
		r = io.LimitReader(f, length)
	}
	return readCloser{r, f}, info, nil
}

// open opens the object's file and describes the object. Once open, the
// file keeps reading the same bytes even if a Put replaces the object.
func (b *Bucket) open(key string) (*os.File, storage.ObjectInfo, error) {
	objPath, metaPath, err := b.paths(key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	f, err := os.Open(objPath)
	if isNotExist(err) {
		return nil, storage.ObjectInfo{}, fmt.Errorf("local storage: open %q: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("local storage: open %q: %w", key, err)
	}
	info, err := describe(key, f, metaPath)
	if err != nil {
		f.Close()
		return nil, storage.ObjectInfo{}, fmt.Errorf("local storage: open %q: %w", key, err)
	}
	return f, info, nil
}

// Stat describes the object. Returns storage.ErrNotFound for a missing key.
func (b *Bucket) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, err
	}
	f, info, err := b.open(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	f.Close()
	return info, nil
}

// describe builds an object's ObjectInfo from its open file and its record.
// A file without a record (placed in the folder by hand, or left by a
// crash) is described as application/octet-stream and hashed on the spot,
// so that its ETag still names its content.
func describe(key string, f *os.File, metaPath string) (storage.ObjectInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	if !fi.Mode().IsRegular() {
		return storage.ObjectInfo{}, storage.ErrNotFound
	}
	info := storage.ObjectInfo{Key: key, Size: fi.Size(), Updated: fi.ModTime().UTC()}
	var rec record
	data, err := os.ReadFile(metaPath)
	if err == nil {
		err = json.Unmarshal(data, &rec)
	}
	switch {
	case err == nil:
		info.ContentType, info.ETag = rec.ContentType, etag(rec.SHA256)
	case isNotExist(err):
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return storage.ObjectInfo{}, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return storage.ObjectInfo{}, err
		}
		info.ContentType, info.ETag = "application/octet-stream", etag(hex.EncodeToString(h.Sum(nil)))
	default:
		return storage.ObjectInfo{}, fmt.Errorf("reading its record: %w", err)
	}
	return info, nil
}

// Delete removes the object; a missing key is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	objPath, metaPath, err := b.paths(key)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.remove(objPath, metaPath); err != nil {
		return fmt.Errorf("local storage: delete %q: %w", key, err)
	}
	return nil
}

// DeletePrefix removes every object whose key starts with prefix and
// returns how many it removed. It refuses the empty prefix, which would
// empty the bucket.
func (b *Bucket) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("local storage: refusing to delete with an empty prefix")
	}
	keys, err := b.keys(ctx, prefix)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		objPath, metaPath, err := b.paths(key)
		if err != nil {
			return n, err
		}
		b.mu.Lock()
		removed, err := b.remove(objPath, metaPath)
		b.mu.Unlock()
		if err != nil {
			return n, fmt.Errorf("local storage: delete %q: %w", key, err)
		}
		if removed {
			n++
		}
	}
	return n, nil
}

// remove deletes an object and its record and reports whether there was an
// object. It then removes the folders this left empty, so that a key whose
// objects are all gone can later hold an object itself ("a" after "a/b").
// b.mu must be held.
func (b *Bucket) remove(objPath, metaPath string) (bool, error) {
	fi, err := os.Lstat(objPath)
	if isNotExist(err) || (err == nil && fi.IsDir()) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := os.Remove(objPath); err != nil && !isNotExist(err) {
		return false, err
	}
	if err := os.Remove(metaPath); err != nil && !isNotExist(err) {
		return true, err
	}
	pruneEmpty(b.objects, filepath.Dir(objPath))
	pruneEmpty(b.meta, filepath.Dir(metaPath))
	return true, nil
}

// pruneEmpty removes dir and its parents up to, not including, root while
// they are empty.
func pruneEmpty(root, dir string) {
	for dir != root && strings.HasPrefix(dir, root+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// List describes every object whose key starts with prefix, in key order.
func (b *Bucket) List(ctx context.Context, prefix string) ([]storage.ObjectInfo, error) {
	keys, err := b.keys(ctx, prefix)
	if err != nil {
		return nil, err
	}
	infos := make([]storage.ObjectInfo, 0, len(keys))
	for _, key := range keys {
		info, err := b.Stat(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted since the walk
		}
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// keys returns the keys that start with prefix, in key order. It walks only
// the folder the prefix names. Key order is not the walk's order ("a.c"
// sorts before "a/b", but the walk visits folder "a" first), hence the sort.
func (b *Bucket) keys(ctx context.Context, prefix string) ([]string, error) {
	start := b.objects
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir := prefix[:i]
		if !storage.ValidKey(dir) {
			return nil, fmt.Errorf("local storage: invalid prefix %q", prefix)
		}
		var err error
		if start, err = resolve(b.objects, dir); err != nil {
			return nil, err
		}
	}
	var keys []string
	err := filepath.WalkDir(start, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) {
				return nil // nothing under the prefix, or removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(b.objects, path)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) && storage.ValidKey(key) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local storage: list %q: %w", prefix, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// paths returns where key's bytes and record live.
func (b *Bucket) paths(key string) (objPath, metaPath string, err error) {
	if !storage.ValidKey(key) {
		return "", "", fmt.Errorf("local storage: invalid key %q", key)
	}
	if objPath, err = resolve(b.objects, key); err != nil {
		return "", "", err
	}
	if metaPath, err = resolve(b.meta, key); err != nil {
		return "", "", err
	}
	return objPath, metaPath, nil
}

// resolve returns the path of key under root. It checks on its own that the
// path lies strictly inside root, so that a caller that skipped
// storage.ValidKey still cannot reach outside the folder.
func resolve(root, key string) (string, error) {
	rel := filepath.FromSlash(key)
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("local storage: key %q leads outside the folder", key)
	}
	p := filepath.Join(root, rel)
	if !strings.HasPrefix(p, root+string(filepath.Separator)) {
		return "", fmt.Errorf("local storage: key %q leads outside the folder", key)
	}
	return p, nil
}

// removeStaleUploads deletes the files in tmp/ that a crash left behind.
func (b *Bucket) removeStaleUploads() error {
	entries, err := os.ReadDir(b.tmp)
	if err != nil {
		return fmt.Errorf("local storage: %w", err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || b.now().Sub(fi.ModTime()) < staleUpload {
			continue
		}
		if err := os.Remove(filepath.Join(b.tmp, e.Name())); err != nil && !isNotExist(err) {
			return fmt.Errorf("local storage: %w", err)
		}
	}
	return nil
}

// record is what meta/<key> holds.
type record struct {
	ContentType string `json:"contentType"`
	SHA256      string `json:"sha256"`
}

// etag quotes a hex SHA-256 as an HTTP entity tag.
func etag(sum string) string {
	return `"` + sum + `"`
}

// isNotExist reports whether err means there is no file at a path,
// including when a folder on the way is a file ("a/b" when "a" is an
// object).
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// ctxReader stops a copy once its context is done, so that an abandoned
// upload does not run to the end.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type readCloser struct {
	io.Reader
	io.Closer
}
