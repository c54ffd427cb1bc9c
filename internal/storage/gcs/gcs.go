// Package gcs keeps blobs in a Google Cloud Storage bucket: the production
// implementation of storage.Bucket. It is the only package that imports the
// GCS SDK.
//
// What is retried. Reads (Open, Stat, List) and deletes (Delete,
// DeletePrefix) are retried on transient errors (HTTP 408, 429, 5xx,
// connection resets) with exponential backoff, whatever GCS calls their
// idempotency: repeating them cannot change what the caller asked for — a
// repeated delete of an already deleted object finds nothing and is not an
// error. Put writes a new generation, which is only safe to repeat when the
// write is made conditional, so Put first reads the object's current
// generation and uploads with a precondition on it (generation 0 for a new
// key); only then does the SDK retry the upload. The precondition means a
// retried upload can never overwrite a newer object written by someone else
// in between.
package gcs

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	cloudstorage "cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/fastimage/api/internal/storage"
)

// Defaults for the optional Config fields.
const (
	// DefaultChunkSize is the upload chunk size: each Put holds at most this
	// much of the object in memory, and an upload larger than this is sent in
	// resumable chunks of this size, each retried on its own.
	DefaultChunkSize = 8 << 20
	// DefaultDeleteWorkers bounds how many deletes DeletePrefix runs at once.
	DefaultDeleteWorkers = 8
	// DefaultMaxAttempts bounds how often a read, list or delete request is
	// tried (the first try included) before its error is returned.
	DefaultMaxAttempts = 5
)

// Config says which bucket to use and how to sign URLs for it.
type Config struct {
	// Bucket is the bucket's name. Required.
	Bucket string

	// Client is the GCS client to use. Optional: when nil, New creates one
	// from Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS,
	// workload identity, or the GCE/GKE metadata server), and Close closes
	// it. A client passed in belongs to the caller.
	Client *cloudstorage.Client

	// SigningKeyJSON is a service-account JSON key whose client_email and
	// private_key sign URLs locally, with no network call. Optional.
	SigningKeyJSON []byte
	// SigningKeyFile is the path of such a key, read by New when
	// SigningKeyJSON is empty. Optional.
	SigningKeyFile string
	// SignerEmail is the service account that signs URLs when no key is
	// given. Optional. Without a key the SDK signs with the private key of the
	// client's own service-account credentials if it has one, and otherwise
	// through the IAM Credentials signBlob API (workload identity, GCE), which
	// needs iam.serviceAccounts.signBlob on this account (the "Service Account
	// Token Creator" role on itself). When empty, the SDK takes the email from
	// the client's credentials or the metadata server.
	SignerEmail string

	// SignedURLHost replaces the host of signed URLs, e.g. for an emulator.
	// Optional: by default it is the client's XML API host
	// (storage.googleapis.com in production).
	SignedURLHost string
	// SignedURLScheme is "https" (the default) or "http" (emulators only).
	SignedURLScheme string

	// ChunkSize is the upload chunk size; 0 means DefaultChunkSize. The SDK
	// rounds it up to a multiple of 256 KiB.
	ChunkSize int
	// DeleteWorkers bounds concurrent deletes in DeletePrefix; 0 means
	// DefaultDeleteWorkers.
	DeleteWorkers int
	// MaxAttempts bounds tries per read, list or delete request; 0 means
	// DefaultMaxAttempts. Uploads are bounded by time instead: each chunk is
	// retried for up to 32 seconds (the SDK's ChunkRetryDeadline).
	MaxAttempts int
}

// Bucket is a storage.Bucket backed by one GCS bucket. It is safe for
// concurrent use.
type Bucket struct {
	name          string
	client        *cloudstorage.Client
	ownsClient    bool
	bucket        *cloudstorage.BucketHandle
	signer        signer
	chunkSize     int
	deleteWorkers int
}

// New returns a Bucket for cfg.Bucket. It does not call GCS: a wrong bucket
// name or missing permission shows up on first use. It returns an error if
// cfg is incomplete or the signing key cannot be read or parsed.
func New(ctx context.Context, cfg Config) (*Bucket, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("gcs: config: bucket name is required")
	}
	if cfg.ChunkSize < 0 || cfg.DeleteWorkers < 0 || cfg.MaxAttempts < 0 {
		return nil, errors.New("gcs: config: ChunkSize, DeleteWorkers and MaxAttempts must not be negative")
	}
	sg, err := newSigner(cfg)
	if err != nil {
		return nil, err
	}

	b := &Bucket{
		name:          cfg.Bucket,
		client:        cfg.Client,
		signer:        sg,
		chunkSize:     orDefault(cfg.ChunkSize, DefaultChunkSize),
		deleteWorkers: orDefault(cfg.DeleteWorkers, DefaultDeleteWorkers),
	}
	if b.client == nil {
		// JSON reads keep every request on one API (and one error model);
		// the SDK recommends them and will make them the default.
		b.client, err = cloudstorage.NewClient(ctx, cloudstorage.WithJSONReads())
		if err != nil {
			return nil, fmt.Errorf("gcs: create client: %w", err)
		}
		b.ownsClient = true
	}
	b.bucket = b.client.Bucket(cfg.Bucket).Retryer(
		cloudstorage.WithPolicy(cloudstorage.RetryAlways),
		cloudstorage.WithBackoff(gax.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2}),
		cloudstorage.WithMaxAttempts(orDefault(cfg.MaxAttempts, DefaultMaxAttempts)),
	)
	return b, nil
}

// Close releases the client if New created it; a client passed in through
// Config.Client is left open for its owner.
func (b *Bucket) Close() error {
	if !b.ownsClient {
		return nil
	}
	return b.client.Close()
}

// Name returns "gcs".
func (b *Bucket) Name() string { return "gcs" }

// Put streams r into the object at key, replacing any object there. It holds
// at most one chunk (Config.ChunkSize) in memory. An empty ContentType is
// stored as application/octet-stream.
//
// The upload is conditional on the generation Put saw just before it (see the
// package comment), so a concurrent Put to the same key that lands in
// between makes this one fail instead of silently losing either write.
// When a retried upload finds its precondition failed because its own first
// attempt had succeeded (the response was lost), Put recognises its bytes by
// size and CRC32C and reports success.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (_ storage.ObjectInfo, err error) {
	defer markUnavailable(&err)
	if err := checkKey(key); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("gcs: put: %w", err)
	}
	obj := b.bucket.Object(key)
	cond := cloudstorage.Conditions{DoesNotExist: true}
	switch attrs, err := obj.Attrs(ctx); {
	case errors.Is(err, cloudstorage.ErrObjectNotExist):
	case err != nil:
		return storage.ObjectInfo{}, fmt.Errorf("gcs: put %q: read generation: %w", key, err)
	default:
		cond = cloudstorage.Conditions{GenerationMatch: attrs.Generation}
	}

	// Cancelling the writer's context is the SDK's way to abandon an upload
	// without creating the object.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.If(cond).Retryer(cloudstorage.WithPolicy(cloudstorage.RetryIdempotent)).NewWriter(wctx)
	w.ChunkSize = b.chunkSize
	w.ContentType = opts.ContentType
	if w.ContentType == "" {
		w.ContentType = "application/octet-stream"
	}
	w.CacheControl = opts.CacheControl

	sum := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.Copy(w, io.TeeReader(r, sum))
	if err != nil {
		cancel()
		_ = w.Close()
		return storage.ObjectInfo{}, fmt.Errorf("gcs: put %q: %w", key, err)
	}
	if err := w.Close(); err != nil {
		if !isPreconditionFailed(err) {
			return storage.ObjectInfo{}, fmt.Errorf("gcs: put %q: %w", key, err)
		}
		attrs, serr := obj.Attrs(ctx)
		if serr == nil && attrs.Size == n && attrs.CRC32C == sum.Sum32() {
			return objectInfo(attrs), nil
		}
		return storage.ObjectInfo{}, fmt.Errorf("gcs: put %q: object was replaced by a concurrent write: %w", key, err)
	}
	return objectInfo(w.Attrs()), nil
}

// Open reads length bytes of the object at key from offset (length < 0: to
// the end). An offset at the end reads nothing; one past the end is an
// error (not ErrNotFound). The ObjectInfo and
// the bytes come from the same generation: Open reads the attributes first
// and pins the read to their generation. The reader is bound to ctx. Returns
// storage.ErrNotFound (wrapped) for a missing key.
func (b *Bucket) Open(ctx context.Context, key string, offset, length int64) (_ io.ReadCloser, _ storage.ObjectInfo, err error) {
	defer markUnavailable(&err)
	if err := checkKey(key); err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("gcs: open: %w", err)
	}
	if offset < 0 {
		return nil, storage.ObjectInfo{}, fmt.Errorf("gcs: open %q: negative offset %d", key, offset)
	}
	obj := b.bucket.Object(key)
	// A Put between reading the attributes and opening the pinned generation
	// removes that generation; then try again with the new one.
	const tries = 3
	for range tries {
		attrs, err := obj.Attrs(ctx)
		if err != nil {
			return nil, storage.ObjectInfo{}, mapErr("open", key, err)
		}
		info := objectInfo(attrs)
		if offset > attrs.Size {
			return nil, storage.ObjectInfo{}, fmt.Errorf("gcs: open %q: offset %d is past the end (%d bytes)", key, offset, attrs.Size)
		}
		// GCS answers 416 to a range that starts at the end, where a file
		// would just read nothing.
		if length == 0 || offset == attrs.Size {
			return io.NopCloser(strings.NewReader("")), info, nil
		}
		rd, err := obj.Generation(attrs.Generation).NewRangeReader(ctx, offset, length)
		if errors.Is(err, cloudstorage.ErrObjectNotExist) {
			continue
		}
		if err != nil {
			return nil, storage.ObjectInfo{}, fmt.Errorf("gcs: open %q: %w", key, err)
		}
		return rd, info, nil
	}
	return nil, storage.ObjectInfo{}, fmt.Errorf("gcs: open %q: object kept changing while being opened", key)
}

// Stat describes the object at key. Returns storage.ErrNotFound (wrapped)
// for a missing key.
func (b *Bucket) Stat(ctx context.Context, key string) (_ storage.ObjectInfo, err error) {
	defer markUnavailable(&err)
	if err := checkKey(key); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("gcs: stat: %w", err)
	}
	attrs, err := b.bucket.Object(key).Attrs(ctx)
	if err != nil {
		return storage.ObjectInfo{}, mapErr("stat", key, err)
	}
	return objectInfo(attrs), nil
}

// Delete removes the object at key; a missing key is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) (err error) {
	defer markUnavailable(&err)
	if err := checkKey(key); err != nil {
		return fmt.Errorf("gcs: delete: %w", err)
	}
	err = b.bucket.Object(key).Delete(ctx)
	if err != nil && !errors.Is(err, cloudstorage.ErrObjectNotExist) {
		return fmt.Errorf("gcs: delete %q: %w", key, err)
	}
	return nil
}

// DeletePrefix removes every object whose key starts with prefix, up to
// Config.DeleteWorkers at a time while the listing continues, and returns how
// many it removed (objects that vanished on their own before their delete are
// not counted). It stops at the first error, returning the count so far.
// An empty prefix is refused: it would erase the whole bucket.
func (b *Bucket) DeletePrefix(ctx context.Context, prefix string) (_ int, err error) {
	defer markUnavailable(&err)
	if prefix == "" {
		return 0, errors.New("gcs: delete prefix: refusing an empty prefix, which would erase the whole bucket")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.deleteWorkers)
	var deleted atomic.Int64

	it := b.bucket.Objects(gctx, b.query(prefix, "Name"))
	var listErr error
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			listErr = err
			break
		}
		name := attrs.Name
		g.Go(func() error {
			err := b.bucket.Object(name).Delete(gctx)
			switch {
			case errors.Is(err, cloudstorage.ErrObjectNotExist):
				return nil
			case err != nil:
				return fmt.Errorf("delete %q: %w", name, err)
			}
			deleted.Add(1)
			return nil
		})
	}
	// A failed delete cancels gctx and so also ends the listing; its error is
	// the cause, so it goes first.
	if err := g.Wait(); err != nil {
		return int(deleted.Load()), fmt.Errorf("gcs: delete prefix %q: %w", prefix, err)
	}
	if listErr != nil {
		return int(deleted.Load()), fmt.Errorf("gcs: delete prefix %q: list: %w", prefix, listErr)
	}
	return int(deleted.Load()), nil
}

// List describes every object whose key starts with prefix, in key order
// (GCS lists in lexicographic byte order).
func (b *Bucket) List(ctx context.Context, prefix string) (_ []storage.ObjectInfo, err error) {
	defer markUnavailable(&err)
	it := b.bucket.Objects(ctx, b.query(prefix, "Name", "Size", "ContentType", "MD5", "Etag", "Updated"))
	var infos []storage.ObjectInfo
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return infos, nil
		}
		if err != nil {
			return nil, fmt.Errorf("gcs: list %q: %w", prefix, err)
		}
		infos = append(infos, objectInfo(attrs))
	}
}

// query lists every object under prefix (no delimiter: the whole subtree),
// fetching only the named attributes.
func (b *Bucket) query(prefix string, attrs ...string) *cloudstorage.Query {
	q := &cloudstorage.Query{Prefix: prefix, Projection: cloudstorage.ProjectionNoACL}
	// SetAttrSelection fails only for unknown names, which are constants here.
	_ = q.SetAttrSelection(attrs)
	return q
}

// objectInfo describes an object. Its ETag is the hex MD5 of the content
// (what the XML API and most HTTP caches call the ETag of a non-composite
// object): it changes exactly when the bytes change and is the same on every
// path (Put, Open, Stat, List). Composite objects have no MD5; for them it
// falls back to the JSON API etag, which changes with every generation.
func objectInfo(a *cloudstorage.ObjectAttrs) storage.ObjectInfo {
	etag := a.Etag
	if len(a.MD5) > 0 {
		etag = fmt.Sprintf("%x", a.MD5)
	}
	return storage.ObjectInfo{
		Key:         a.Name,
		Size:        a.Size,
		ContentType: a.ContentType,
		ETag:        etag,
		Updated:     a.Updated.UTC(),
	}
}

// mapErr wraps err with the operation and key, turning the SDK's not-found
// into storage.ErrNotFound.
func mapErr(op, key string, err error) error {
	if errors.Is(err, cloudstorage.ErrObjectNotExist) {
		return fmt.Errorf("gcs: %s %q: %w", op, key, storage.ErrNotFound)
	}
	return fmt.Errorf("gcs: %s %q: %w", op, key, err)
}

// markUnavailable wraps an error that the SDK's retries would retry (a
// timeout, 408, 429, a 5xx, a broken connection) with
// storage.ErrUnavailable: they ran out, but the same call may work later.
func markUnavailable(err *error) {
	if *err != nil && !errors.Is(*err, storage.ErrNotFound) && !errors.Is(*err, context.Canceled) && cloudstorage.ShouldRetry(*err) {
		*err = fmt.Errorf("%w: %w", storage.ErrUnavailable, *err)
	}
}

func isPreconditionFailed(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed
}

func checkKey(key string) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("invalid key %q", key)
	}
	return nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
