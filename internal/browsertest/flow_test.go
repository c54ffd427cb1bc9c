package browsertest

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// signIn signs the user in through #signin-form and waits for the signed-in
// shell on the editor's route.
func signIn(tb *tab, email string) {
	tb.t.Helper()
	tb.goTo("/#/signin")
	tb.waitVisible("#signin-form")
	tb.typeInto("#signin-email", email)
	tb.typeInto("#signin-password", password)
	tb.click("#signin-form button[type=submit]")
	tb.waitVisible("#nav")
	tb.waitFor("the address to show the editor", `location.hash === "#/editor"`, 10*time.Second)
}

// balance is the credits badge's balance; it waits until it shows one.
func balance(tb *tab) int {
	tb.t.Helper()
	tb.waitFor("the credits balance", `/^-?\d+$/.test((document.querySelector("#credits") || {dataset: {}}).dataset.balance || "")`, 10*time.Second)
	n, err := strconv.Atoi(tb.attr("#credits", "data-balance"))
	if err != nil {
		tb.fatalf("#credits data-balance: %v", err)
	}
	return n
}

// cost waits for #cost to show an estimate other than not, and returns it.
func cost(tb *tab, not int) int {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("a cost estimate other than %d in #cost", not),
		fmt.Sprintf(`(() => { const e = document.querySelector("#cost"); return e && /^\d+$/.test(e.dataset.cost || "") && Number(e.dataset.cost) > 0 && Number(e.dataset.cost) !== %d && e.innerText.trim() !== ""; })()`, not),
		10*time.Second)
	n, _ := strconv.Atoi(tb.attr("#cost", "data-cost"))
	return n
}

// chooseSmallestSize picks the smallest image size #size offers, as a user
// would with the select, so that the generator is quick.
func chooseSmallestSize(tb *tab) string {
	tb.t.Helper()
	return eval[string](tb, `(() => {
		const sel = document.querySelector("#size");
		if (!sel || !sel.options.length) return "";
		const area = (o) => { const m = (o.value + " " + o.text).match(/(\d+)\s*[x×]\s*(\d+)/); return m ? Number(m[1]) * Number(m[2]) : Infinity; };
		let best = sel.options[0];
		for (const o of sel.options) if (area(o) < area(best)) best = o;
		sel.focus();
		sel.value = best.value;
		sel.dispatchEvent(new Event("input", {bubbles: true}));
		sel.dispatchEvent(new Event("change", {bubbles: true}));
		return best.text;
	})()`)
}

// watchJob starts recording what the progress panel shows — each status,
// each progress value, previews that loaded — into window.__job, from
// before the job is submitted until the test reads it.
func watchJob(tb *tab) {
	tb.t.Helper()
	eval[bool](tb, `(() => {
		const seen = window.__job = {statuses: [], progress: [], previews: 0};
		const note = () => {
			const st = document.querySelector("#generation-status");
			const s = st && st.dataset.status;
			if (s && seen.statuses[seen.statuses.length - 1] !== s) seen.statuses.push(s);
			const p = document.querySelector("progress#progress");
			if (p && p.hasAttribute("value")) {
				const v = Number(p.value);
				if (seen.progress[seen.progress.length - 1] !== v) seen.progress.push(v);
			}
		};
		new MutationObserver(note).observe(document.documentElement, {subtree: true, childList: true, attributes: true, characterData: true});
		setInterval(note, 20);
		document.addEventListener("load", (e) => {
			const img = e.target;
			if (img.tagName === "IMG" && img.closest("#previews") && img.naturalWidth > 0) seen.previews++;
		}, true);
		note();
		return true;
	})()`)
}

// jobSeen is what watchJob recorded.
type jobSeen struct {
	Statuses []string
	Progress []float64
	Previews int
}

func readJob(tb *tab) jobSeen {
	tb.t.Helper()
	return eval[jobSeen](tb, `window.__job`)
}

// finalImageJS is true once a final image shows in #results, loaded.
const finalImageJS = `(() => {
	const st = document.querySelector("#generation-status");
	if (st && (st.dataset.status === "FAILED" || st.dataset.status === "CANCELED")) throw new Error("the generation ended " + st.dataset.status + ": " + st.innerText);
	return st && st.dataset.status === "SUCCEEDED" &&
		[...document.querySelectorAll("#results img.result")].some((i) => i.complete && i.naturalWidth > 0);
})()`

// waitForFinalImage waits for the job to succeed and its image to load,
// and checks that it can be downloaded.
func waitForFinalImage(tb *tab, timeout time.Duration) {
	tb.t.Helper()
	tb.waitFor("the final image in #results", finalImageJS, timeout)
	if n := tb.count("#results a.download[href]"); n == 0 {
		tb.fatalf("the final image has no download link (#results a.download)")
	}
}

// checkProgressRose fails unless the panel showed the job running, its
// progress rising through intermediate values, and a live preview.
func checkProgressRose(t *testing.T, seen jobSeen) {
	t.Helper()
	if len(seen.Statuses) == 0 || seen.Statuses[len(seen.Statuses)-1] != "SUCCEEDED" {
		t.Errorf("statuses shown: %v, want them to end with SUCCEEDED", seen.Statuses)
	}
	ran := false
	for _, s := range seen.Statuses {
		ran = ran || s == "QUEUED" || s == "RUNNING"
	}
	if !ran {
		t.Errorf("statuses shown: %v, want QUEUED or RUNNING before SUCCEEDED", seen.Statuses)
	}
	between := 0
	for i, v := range seen.Progress {
		if i > 0 && v < seen.Progress[i-1] {
			t.Errorf("progress went back from %v to %v (all: %v)", seen.Progress[i-1], v, seen.Progress)
		}
		if v > 0 && v < 100 {
			between++
		}
	}
	if between == 0 {
		t.Errorf("progress shown: %v, want values between 0 and 100 while it runs", seen.Progress)
	}
	if seen.Previews == 0 {
		t.Errorf("no live preview loaded in #previews while the job ran")
	}
}
