package browsertest

import (
	"bytes"
	"context"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/fastimage/api/internal/imaging/imagingtest"
)

// A user writes a prompt, sees what it will cost before submitting, watches
// the job run — status, a rising progress bar, live previews — and gets the
// final image, which then shows in My Works; the credits badge follows.
func TestGenerateAndWatchProgressToTheFinalImage(t *testing.T) {
	t.Parallel()
	svc := startService(t, serviceOptions{stepDelay: 60 * time.Millisecond})
	svc.signUpVerified(t, "grace@example.com", "Grace Hopper")
	tb := openTab(t, svc)
	signIn(tb, "grace@example.com")
	before := balance(tb)

	tb.typeInto("#prompt", "a lighthouse on a cliff at dusk")
	chooseSmallestSize(tb)
	tb.typeInto("#count", "2")
	two := cost(tb, 0)
	tb.typeInto("#count", "1")
	one := cost(tb, two)
	if two != 2*one {
		t.Errorf("#cost shows %d for two images and %d for one, want twice as much for two", two, one)
	}
	tb.screens("editor-ready")

	watchJob(tb)
	tb.click("#generate-submit")
	tb.waitVisible("#job")
	tb.waitFor("the job to run", `document.querySelector('#generation-status[data-status="RUNNING"]') || document.querySelector('#generation-status[data-status="SUCCEEDED"]')`, 15*time.Second)
	tb.waitFor("a live preview", `[...document.querySelectorAll("#previews img")].some((i) => i.complete && i.naturalWidth > 0) || document.querySelector('#generation-status[data-status="SUCCEEDED"]')`, 15*time.Second)
	tb.screens("editor-running")
	waitForFinalImage(tb, 30*time.Second)
	tb.screens("editor-done")
	checkProgressRose(t, readJob(tb))

	tb.waitFor("the credits badge to take the cost off", "Number(document.querySelector('#credits').dataset.balance) === "+strconv.Itoa(before-one), 10*time.Second)
	if n := tb.count("#events li[data-seq]"); n == 0 {
		t.Errorf("the activity log #events shows no event")
	}

	tb.click(`#nav a[href="#/works"]`)
	tb.waitFor("the new work in My Works with its thumbnail",
		`[...document.querySelectorAll("#works-grid .work[data-id] img")].some((i) => i.complete && i.naturalWidth > 0)`, 15*time.Second)
	if n := tb.count("#works-grid .work[data-id]"); n != 1 {
		t.Errorf("My Works shows %d works, want the 1 just made", n)
	}
	tb.screens("works")
}

// A user picks a photo, paints a mask over part of it with the mouse, writes
// an instruction and gets the edited image; the service kept the mask the
// user painted and used it for the edit.
func TestUploadAndEditWithAMask(t *testing.T) {
	t.Parallel()
	svc := startService(t, serviceOptions{})
	svc.signUpVerified(t, "katherine@example.com", "Katherine Johnson")
	tb := openTab(t, svc)
	signIn(tb, "katherine@example.com")

	photo := filepath.Join(t.TempDir(), "photo.png")
	if err := os.WriteFile(photo, imagingtest.PNG(320, 240), 0o644); err != nil {
		t.Fatal(err)
	}
	tb.waitVisible("#source-file")
	tb.do(chromedp.SetUploadFiles(chromedp.CSS("#source-file"), []string{photo}))
	tb.waitFor("the photo with a mask canvas over it", `(() => {
		const c = document.querySelector("#source-preview canvas#mask-canvas");
		return c && c.width > 0 && c.height > 0 && c.getClientRects().length > 0;
	})()`, 10*time.Second)
	tb.screens("editor-source")

	painted := `(() => {
		const c = document.querySelector("#mask-canvas");
		const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
		let n = 0;
		for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
		return n;
	})()`
	before := eval[int](tb, painted)
	tb.do(chromedp.ScrollIntoView(chromedp.CSS("#mask-canvas")))
	type rect struct{ X, Y, Width, Height float64 }
	r := eval[rect](tb, `(() => { const b = document.querySelector("#mask-canvas").getBoundingClientRect(); return {x: b.x, y: b.y, width: b.width, height: b.height}; })()`)
	// A stroke across the middle of the photo, as a hand would draw it.
	tb.mouse(input.DispatchMouseEventTypeMousePressed, r.X+r.Width*0.25, r.Y+r.Height*0.4, 1)
	for i := 1; i <= 12; i++ {
		f := float64(i) / 12
		tb.mouse(input.DispatchMouseEventTypeMouseMoved, r.X+r.Width*(0.25+0.5*f), r.Y+r.Height*(0.4+0.2*f), 1)
	}
	tb.mouse(input.DispatchMouseEventTypeMouseReleased, r.X+r.Width*0.75, r.Y+r.Height*0.6, 0)
	if after := eval[int](tb, painted); after <= before {
		t.Fatalf("painting on #mask-canvas changed nothing (%d painted pixels before, %d after)", before, after)
	}
	tb.screens("editor-mask")

	tb.typeInto("#prompt", "turn the painted part into a purple sky")
	cost(tb, 0)
	watchJob(tb)
	tb.click("#generate-submit")
	waitForFinalImage(tb, 30*time.Second)
	tb.screens("editor-edited")
	checkProgressRose(t, readJob(tb))

	// The service side: one edit, with a source and a mask, and the mask
	// holds the stroke (it is not one flat colour).
	var kind, maskKey string
	var hasSource bool
	svc.scan(t, `SELECT g.kind, g.source_work_id IS NOT NULL, a.storage_key
		FROM generations g JOIN assets a ON a.work_id = g.mask_work_id AND a.parent_id IS NULL
		ORDER BY g.created_at DESC, a.position LIMIT 1`, nil, &kind, &hasSource, &maskKey)
	if kind != "edit" || !hasSource {
		t.Errorf("the job is a %q with a source: %v, want an edit of the uploaded photo", kind, hasSource)
	}
	rc, _, err := svc.bucket.Open(context.Background(), maskKey, 0, -1)
	if err != nil {
		t.Fatalf("read the stored mask: %v", err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	mask, format, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the stored mask is not an image: %v", err)
	}
	if flat(mask) {
		t.Errorf("the stored mask (%s, %v) is one flat colour: the painted stroke is not in it", format, mask.Bounds())
	}
}

// flat reports whether every pixel of img has the same colour.
func flat(img image.Image) bool {
	b := img.Bounds()
	r0, g0, b0, a0 := img.At(b.Min.X, b.Min.Y).RGBA()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if r, g, bl, a := img.At(x, y).RGBA(); r != r0 || g != g0 || bl != b0 || a != a0 {
				return false
			}
		}
	}
	return true
}
