package privacy

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastimage/api/internal/actor"
)

// The account of the memory test and the benchmark: 200 MiB of images
// that do not compress (random bytes), in 100 blobs.
const (
	bigAccountImages    = 100
	bigAccountImageSize = 2 << 20
	// maxExportRSSGrowth bounds how far the process's resident memory may
	// rise over its baseline while it exports that account. The export
	// itself holds a few hundred KiB (a 256 KiB buffer, a flate writer, a
	// batch of rows); the rest is the runtime's and the race detector's
	// slack. Loading the images would take 200 MiB.
	maxExportRSSGrowth = 64 << 20
)

func bigAccount(tb testing.TB) (*exportEnv, actor.Actor, []string) {
	tb.Helper()
	e := newExportEnv(tb, localBucket(tb), false, nil)
	me := e.newUser(tb, "big@example.com")
	keys := e.addImages(tb, me.UserID, bigAccountImages, bigAccountImageSize)
	return e, me, keys
}

// exportOnce asks for an export and runs it as a worker would, in this
// goroutine, and returns the completed request.
func exportOnce(tb testing.TB, e *exportEnv, me actor.Actor) *Request {
	tb.Helper()
	ctx := context.Background()
	r, err := e.svc.RequestExport(ctx, me)
	if err != nil {
		tb.Fatal(err)
	}
	claimed, err := e.svc.claim(ctx, "bench")
	if err != nil || claimed == nil || claimed.ID != r.ID {
		tb.Fatalf("claim: %v, %v", claimed, err)
	}
	if err := e.svc.Export(ctx, claimed, func(int) {}); err != nil {
		tb.Fatal(err)
	}
	if err := e.svc.Finish(ctx, claimed); err != nil {
		tb.Fatal(err)
	}
	return claimed
}

// memoryMeter watches the process's memory during one export: the
// kernel's peak resident set (VmHWM, reset at the start, so no spike is
// missed) and, sampled, the Go heap.
type memoryMeter struct {
	baseRSS  int64
	stop     chan struct{}
	wg       sync.WaitGroup
	peakHeap uint64
}

func startMemoryMeter(tb testing.TB) *memoryMeter {
	tb.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	m := &memoryMeter{baseRSS: procStatus(tb, "VmRSS"), stop: make(chan struct{})}
	// proc(5): writing 5 to clear_refs resets the peak resident set size.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Fatalf("reset the peak RSS: %v", err)
	}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	m.wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			m.peakHeap = max(m.peakHeap, sample[0].Value.Uint64())
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	})
	return m
}

// done returns how far the resident set rose over the baseline at its
// peak, and the largest Go heap sampled.
func (m *memoryMeter) done(tb testing.TB) (rssGrowth int64, peakHeap uint64) {
	close(m.stop)
	m.wg.Wait()
	return procStatus(tb, "VmHWM") - m.baseRSS, m.peakHeap
}

// procStatus reads one field of /proc/self/status, in bytes.
func procStatus(tb testing.TB, field string) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatalf("this test reads the process's memory from /proc: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("/proc/self/status has no %s", field)
	return 0
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Exporting an account with 200 MiB of images raises the resident memory
// by less than 64 MiB: the ZIP is streamed, never held. Not parallel, so
// that the process's peak is this export's.
func TestExportMemoryIsFlat(t *testing.T) {
	e, me, keys := bigAccount(t)
	m := startMemoryMeter(t)
	start := time.Now()
	r := exportOnce(t, e, me)
	took := time.Since(start)
	growth, heap := m.done(t)
	t.Logf("exported %s of images into a %s ZIP in %v (%.0f MB/s): peak RSS +%s, peak Go heap %s",
		mib(bigAccountImages*bigAccountImageSize), mib(*r.ResultBytes), took.Round(time.Millisecond),
		float64(*r.ResultBytes)/1e6/took.Seconds(), mib(growth), mib(int64(heap)))
	if growth > maxExportRSSGrowth {
		t.Errorf("resident memory rose %s during the export, want at most %s", mib(growth), mib(maxExportRSSGrowth))
	}
	if *r.ResultBytes < bigAccountImages*bigAccountImageSize {
		t.Errorf("the ZIP has %d bytes, less than the images", *r.ResultBytes)
	}
	zr := openExport(t, e.bucket, r)
	checkImages(t, zr, checkManifest(t, zr), e.bucket, me.UserID, keys)
}

// BenchmarkExport exports the 200 MiB account: MB/s is the throughput over
// the images' bytes; peak-RSS-MiB is how far the process's resident memory
// rose over its baseline, peak-heap-MiB the largest Go heap sampled.
func BenchmarkExport(b *testing.B) {
	e, me, _ := bigAccount(b)
	b.SetBytes(bigAccountImages * bigAccountImageSize)
	var growth int64
	var heap uint64
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		m := startMemoryMeter(b)
		b.StartTimer()
		exportOnce(b, e, me)
		b.StopTimer()
		g, h := m.done(b)
		growth, heap = max(growth, g), max(heap, h)
		b.StartTimer()
	}
	b.ReportMetric(float64(growth)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
}
