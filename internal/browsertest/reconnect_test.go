package browsertest

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// setOffline cuts the tab's network or brings it back, as DevTools'
// "Offline" does: new requests and sockets fail, and the page gets
// navigator.onLine and the offline/online events. Chromium (156) leaves a
// WebSocket that is already open untouched, so a test that wants it gone
// also cuts the service's side (service.conns.dropAll).
func (tb *tab) setOffline(offline bool) {
	tb.t.Helper()
	rules := network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: []*network.Conditions{}}
	if offline {
		rules.MatchedNetworkConditions = append(rules.MatchedNetworkConditions,
			&network.Conditions{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
	}
	tb.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.EmulateNetworkConditionsByRule, rules); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.OverrideNetworkState, network.OverrideNetworkStateParams{
			Offline: offline, DownloadThroughput: -1, UploadThroughput: -1,
		})
		return err
	}))
}

// The network goes away while a generation runs, and the job finishes
// meanwhile. The page says it is reconnecting; when the network is back it
// resumes after the last event it saw and ends on the final image, with
// every event of the job in its activity log exactly once — the same events
// the service stored.
func TestReconnectMidGenerationMissesNoEvent(t *testing.T) {
	t.Parallel()
	svc := startService(t, serviceOptions{stepDelay: 300 * time.Millisecond})
	svc.signUpVerified(t, "hedy@example.com", "Hedy Lamarr")
	tb := openTab(t, svc)
	signIn(tb, "hedy@example.com")
	tb.waitFor(`#live-status data-state="live"`, `(document.querySelector("#live-status") || {dataset: {}}).dataset.state === "live"`, 10*time.Second)

	tb.typeInto("#prompt", "a paper boat on a stormy sea")
	chooseSmallestSize(tb)
	cost(tb, 0)
	tb.click("#generate-submit")
	tb.waitFor("the job running, its first events in the log",
		`document.querySelector('#generation-status[data-status="RUNNING"]') && document.querySelectorAll("ol#events li[data-seq]").length >= 2`, 15*time.Second)
	var genID string
	svc.scan(t, `SELECT id::text FROM generations ORDER BY created_at DESC LIMIT 1`, nil, &genID)
	seenBefore := tb.count("ol#events li[data-seq]")

	// While the network is away the page may fail requests: that is the
	// point, and only then is it not a problem.
	endOffline := tb.expectProblems(regexp.MustCompile(`ERR_INTERNET_DISCONNECTED|ERR_CONNECTION|WebSocket|Failed to fetch|NetworkError`))
	tb.setOffline(true)
	dropped := svc.conns.dropAll()
	t.Logf("offline; cut %d connections on the service's side", dropped)
	tb.waitFor(`#live-status data-state="reconnecting" with visible text`, `(() => {
		const e = document.querySelector("#live-status");
		return e && e.dataset.state === "reconnecting" && e.getClientRects().length > 0 && e.innerText.trim() !== "";
	})()`, 10*time.Second)
	t.Logf("#live-status says %q", tb.text("#live-status"))
	tb.screens("reconnecting")

	// The job goes on without the page and finishes.
	deadline := time.Now().Add(slowdown * 20 * time.Second)
	for {
		var status string
		svc.scan(t, `SELECT status FROM generations WHERE id = ?`, []any{genID}, &status)
		if status == "succeeded" {
			break
		}
		if status == "failed" || status == "canceled" || time.Now().After(deadline) {
			t.Fatalf("the generation is %s while the page is offline, want it to succeed", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var stored []int
	rows, err := svc.DB.QueryContext(context.Background(), `SELECT seq FROM generation_events WHERE generation_id = ? ORDER BY seq`, genID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s int
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if shown := tb.count("ol#events li[data-seq]"); shown >= len(stored) {
		t.Fatalf("the page shows %d events while offline and the service stored %d: nothing was missed, so the test proves no resume", shown, len(stored))
	}

	tb.setOffline(false)
	waitForFinalImage(tb, 30*time.Second)
	tb.waitFor(`#live-status back to "live"`, `document.querySelector("#live-status").dataset.state === "live"`, 15*time.Second)
	for _, p := range endOffline() {
		t.Logf("expected while offline: %s", p)
	}
	tb.screens("reconnected")

	shown := eval[[]int](tb, `[...document.querySelectorAll("ol#events li[data-seq]")].map((li) => Number(li.dataset.seq))`)
	sorted := slices.Clone(shown)
	slices.Sort(sorted)
	if !slices.Equal(sorted, stored) {
		t.Errorf("ol#events shows seqs %v, want exactly the stored events %v (each once)", shown, stored)
	}
	for i, s := range stored {
		if s != i+1 {
			t.Errorf("stored seqs %v are not 1..%d", stored, len(stored))
			break
		}
	}
	t.Logf("%d events before going offline, %d in all", seenBefore, len(stored))
}

// The service drops the page's WebSocket (a restart, a proxy that gives up)
// while the network stays up. The page notices, says it is reconnecting,
// comes back live by itself, and the credits badge still follows the
// account: a generation started elsewhere takes its credits off live.
func TestLiveFeedRecoversWhenTheServiceDropsTheSocket(t *testing.T) {
	t.Parallel()
	svc := startService(t, serviceOptions{})
	token := svc.signUpVerified(t, "radia@example.com", "Radia Perlman")
	tb := openTab(t, svc)
	signIn(tb, "radia@example.com")
	liveJS := `(document.querySelector("#live-status") || {dataset: {}}).dataset.state === "live"`
	tb.waitFor(`#live-status data-state="live"`, liveJS, 10*time.Second)
	badge := tb.text("#credits")
	eval[bool](tb, `(() => {
		const states = window.__states = [];
		const e = document.querySelector("#live-status");
		new MutationObserver(() => states.push(e.dataset.state)).observe(e, {attributes: true, attributeFilter: ["data-state"]});
		return true;
	})()`)

	if n := svc.conns.dropAll(); n == 0 {
		t.Fatalf("the page holds no connection to the service to drop")
	}
	tb.waitFor("the page to notice and come back live", `window.__states.includes("reconnecting") && `+liveJS, 15*time.Second)
	t.Logf("#live-status went through %v", eval[[]string](tb, `window.__states`))

	var out struct {
		GenerateImage struct{ Generation struct{ ID string } }
	}
	svc.gql(t, token, `mutation { generateImage(input: {prompt: "a red kite", width: 256, height: 256}) { generation { id } } }`, nil, &out)
	// The job holds its credits at once, and takes them when it is done:
	// either way the badge changes by itself.
	tb.waitFor("the credits badge to change by itself from "+strconv.Quote(badge),
		`document.querySelector("#credits").innerText !== `+strconv.Quote(badge), 15*time.Second)
	tb.screens("live-again")
}
