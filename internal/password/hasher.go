package password

import (
	"context"
	"runtime"
	"sync/atomic"

	"golang.org/x/crypto/argon2"

	"github.com/fastimage/api/internal/apperr"
)

// HasherConfig sets the parameters of new hashes and how many hashes may run
// at once.
type HasherConfig struct {
	// Params are the argon2id parameters of new hashes; zero means
	// DefaultParams.
	Params Params
	// Concurrency is how many hashes (Hash or Verify) may run at once in
	// the process; each holds Params.Memory KiB while it runs. Zero means
	// as many as fit in DefaultHashMemory, at least one and at most the
	// number of CPUs Go may use.
	Concurrency int
	// Queue is how many callers may wait for a free slot; one more is
	// refused at once. Zero means 32 per slot. Waiting is also cut short
	// when the caller's context ends.
	Queue int
}

// DefaultHashMemory is the argon2 memory that the hashes in flight hold
// together when HasherConfig.Concurrency is zero: two hashes at
// DefaultParams. Go's collector lets the heap grow to about twice what is
// live before it collects, so a burst of sign-ins then takes at most about
// 100 MB of resident memory, whatever the number of CPUs.
const DefaultHashMemory = 40 << 20

// Hasher hashes and verifies passwords with a bound on the hashes in flight:
// argon2id holds its whole memory cost (19 MiB by default) for the length of
// a hash, so a burst of sign-ins would otherwise become gigabytes. A Hasher
// is built once per process and shared by everything that hashes.
type Hasher struct {
	params   Params
	slots    chan struct{}
	queue    int64
	waiting  atomic.Int64
	inFlight atomic.Int64
	// derive is argon2id; a test replaces it to hold hashes in flight.
	derive func(password, salt []byte, p Params) []byte
}

// NewHasher returns a Hasher with cfg's parameters and bounds.
func NewHasher(cfg HasherConfig) *Hasher {
	if cfg.Params == (Params{}) {
		cfg.Params = DefaultParams
	}
	if cfg.Concurrency <= 0 {
		fit := DefaultHashMemory / (int(cfg.Params.Memory) << 10)
		cfg.Concurrency = max(1, min(fit, runtime.GOMAXPROCS(0)))
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 32 * cfg.Concurrency
	}
	return &Hasher{
		params: cfg.Params,
		slots:  make(chan struct{}, cfg.Concurrency),
		queue:  int64(cfg.Queue),
		derive: func(password, salt []byte, p Params) []byte {
			return argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
		},
	}
}

// Params returns the parameters of new hashes.
func (h *Hasher) Params() Params { return h.params }

// Concurrency returns how many hashes may run at once.
func (h *Hasher) Concurrency() int { return cap(h.slots) }

// InFlight returns how many hashes are running now.
func (h *Hasher) InFlight() int { return int(h.inFlight.Load()) }

// Waiting returns how many callers wait for a slot now.
func (h *Hasher) Waiting() int { return int(h.waiting.Load()) }

// Hash is the package's Hash with the Hasher's parameters, once a slot is
// free. Returns UNAVAILABLE (with retryAfter) when too many hashes wait, or
// ctx's error when it ends first.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.params.validate(); err != nil {
		return "", err
	}
	salt, err := newSalt(h.params.SaltLen)
	if err != nil {
		return "", err
	}
	key, err := h.run(ctx, []byte(password), salt, h.params)
	if err != nil {
		return "", err
	}
	return encode(h.params, salt, key), nil
}

// Verify is the package's Verify, once a slot is free. Returns UNAVAILABLE
// (with retryAfter) when too many hashes wait, or ctx's error when it ends
// first.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, err
	}
	got, err := h.run(ctx, []byte(password), salt, p)
	if err != nil {
		return false, err
	}
	return constantTimeEqual(got, key), nil
}

// DummyVerify is the package's DummyVerify, under the same bound as Verify
// so that an unknown email waits as a known one does. It returns only the
// errors of waiting (UNAVAILABLE, ctx's error).
func (h *Hasher) DummyVerify(ctx context.Context, password string) error {
	_, err := h.Verify(ctx, password, dummyHash)
	return err
}

// NeedsRehash reports whether encoded was made with parameters other than
// the Hasher's (see the package's NeedsRehash).
func (h *Hasher) NeedsRehash(encoded string) bool {
	return NeedsRehash(encoded, h.params)
}

// run derives a key once a slot is free.
func (h *Hasher) run(ctx context.Context, password, salt []byte, p Params) ([]byte, error) {
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	h.inFlight.Add(1)
	defer func() {
		h.inFlight.Add(-1)
		<-h.slots
	}()
	return h.derive(password, salt, p), nil
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	default:
	}
	if h.waiting.Add(1) > h.queue {
		h.waiting.Add(-1)
		return busy()
	}
	defer h.waiting.Add(-1)
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func busy() error {
	return apperr.Errorf(apperr.Unavailable, "The server is checking too many passwords right now. Try again in a second.").
		With("retryAfter", 1)
}
