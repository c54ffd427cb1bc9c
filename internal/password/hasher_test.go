package password

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastimage/api/internal/apperr"
)

// heldHasher returns a Hasher whose hashes run until release is closed,
// and the largest number that ran at once.
func heldHasher(cfg HasherConfig) (h *Hasher, release chan struct{}, peak *atomic.Int64) {
	h = NewHasher(cfg)
	release = make(chan struct{})
	peak = &atomic.Int64{}
	var running atomic.Int64
	derive := h.derive
	h.derive = func(password, salt []byte, p Params) []byte {
		n := running.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return derive(password, salt, p)
	}
	return h, release, peak
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Each argon2id hash holds its memory cost while it runs: a burst of
// sign-ins must not run more hashes at once than the Hasher allows.
func TestHasherBoundsHashesInFlight(t *testing.T) {
	h, release, peak := heldHasher(HasherConfig{Params: fastParams, Concurrency: 2, Queue: 100})
	encoded, err := Hash("correct horse battery staple", fastParams)
	if err != nil {
		t.Fatal(err)
	}
	const callers = 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = h.Hash(context.Background(), "correct horse battery staple")
			} else {
				var ok bool
				if ok, err = h.Verify(context.Background(), "correct horse battery staple", encoded); err == nil && !ok {
					err = errors.New("Verify: got false, want true")
				}
			}
			errs <- err
		})
	}
	waitFor(t, "2 hashes running and 18 waiting", func() bool { return h.InFlight() == 2 && h.Waiting() == callers-2 })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("hash: got %v, want nil", err)
		}
	}
	if got := peak.Load(); got != 2 {
		t.Errorf("most hashes at once: got %d, want 2", got)
	}
	if h.InFlight() != 0 || h.Waiting() != 0 {
		t.Errorf("after: %d in flight, %d waiting; want 0, 0", h.InFlight(), h.Waiting())
	}
}

// Past the queue a caller is refused at once with UNAVAILABLE and
// retryAfter, before any hashing; a waiting caller whose context ends stops
// waiting.
func TestHasherRefusesPastQueue(t *testing.T) {
	h, release, _ := heldHasher(HasherConfig{Params: fastParams, Concurrency: 1, Queue: 1})
	defer close(release)
	go func() { _, _ = h.Hash(context.Background(), "first password") }()
	waitFor(t, "one hash running", func() bool { return h.InFlight() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() {
		_, err := h.Hash(ctx, "second password")
		waited <- err
	}()
	waitFor(t, "one caller waiting", func() bool { return h.Waiting() == 1 })

	_, err := h.Verify(context.Background(), "third password", dummyHash)
	var ae *apperr.Error
	if !errors.As(err, &ae) || ae.Code != apperr.Unavailable || ae.Fields["retryAfter"] == nil {
		t.Errorf("past the queue: got %v, want UNAVAILABLE with retryAfter", err)
	}
	if err := h.DummyVerify(context.Background(), "fourth password"); apperr.CodeOf(err) != apperr.Unavailable {
		t.Errorf("DummyVerify past the queue: got %v, want UNAVAILABLE", err)
	}

	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled while waiting: got %v, want context.Canceled", err)
	}
	if h.Waiting() != 0 || h.InFlight() != 1 {
		t.Errorf("after: %d waiting, %d in flight; want 0, 1", h.Waiting(), h.InFlight())
	}
}

// By default the hashes in flight hold at most DefaultHashMemory, however
// many CPUs there are: with one slot per CPU, a burst of sign-ins on an
// 8-CPU machine held 8 × 19 MiB and the server's memory grew by 290 MB.
// Cheaper parameters let more run, up to one per CPU.
func TestHasherDefaultConcurrencyFitsItsMemory(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	tests := []struct {
		name   string
		params Params
		want   int
	}{
		{"default parameters", DefaultParams, 2},
		{"cheap parameters", fastParams, 8},
		{"memory above the budget", Params{Memory: 64 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHasher(HasherConfig{Params: tc.params})
			if got := h.Concurrency(); got != tc.want {
				t.Errorf("concurrency on 8 CPUs: got %d, want %d", got, tc.want)
			}
			if held := h.Concurrency() * int(tc.params.Memory) << 10; h.Concurrency() > 1 && held > DefaultHashMemory {
				t.Errorf("hashes in flight hold %d MiB, want at most %d", held>>20, DefaultHashMemory>>20)
			}
		})
	}
	runtime.GOMAXPROCS(1)
	if got := NewHasher(HasherConfig{Params: fastParams}).Concurrency(); got != 1 {
		t.Errorf("concurrency on 1 CPU: got %d, want 1", got)
	}
}

func TestHasherDefaults(t *testing.T) {
	h := NewHasher(HasherConfig{})
	if h.Params() != DefaultParams {
		t.Errorf("params: got %+v, want DefaultParams", h.Params())
	}
	if h.Concurrency() < 1 {
		t.Errorf("concurrency: got %d, want at least 1", h.Concurrency())
	}
	encoded, err := NewHasher(HasherConfig{Params: fastParams}).Hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Verify("pw", encoded); err != nil || !ok {
		t.Errorf("package Verify of a Hasher's hash: got %v, %v; want true, nil", ok, err)
	}
	if h.NeedsRehash(encoded) != true {
		t.Errorf("NeedsRehash of a fastParams hash under DefaultParams: got false, want true")
	}
}
