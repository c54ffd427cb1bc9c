package browsertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/fastimage/api/internal/imaging/imagingtest"
)

// In My Works a user renames a work, deletes it, finds it in the bin,
// restores it, deletes it again and empties the bin, which ends it for good.
func TestDeleteAndRestoreInMyWorks(t *testing.T) {
	t.Parallel()
	svc := startService(t, serviceOptions{})
	token := svc.signUpVerified(t, "margaret@example.com", "Margaret Hamilton")
	svc.upload(t, token, "moon.png", imagingtest.PNG(200, 150), "Moon landing")
	svc.upload(t, token, "orbit.png", imagingtest.PNG(150, 200), "Orbit")
	tb := openTab(t, svc)
	signIn(tb, "margaret@example.com")

	tb.click(`#nav a[href="#/works"]`)
	tb.waitFor("both works with their thumbnails", `(() => {
		const imgs = [...document.querySelectorAll("#works-grid .work[data-id] img")];
		return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0);
	})()`, 15*time.Second)
	tb.screens("works")
	// Rename inline: no window.prompt, which a user of a test cannot see.
	tb.click(workCard(tb, "Moon landing") + " .rename")
	tb.waitVisible("input.rename-input")
	tb.typeInto("input.rename-input", "First steps")
	tb.pressEnter()
	tb.waitFor("the new title on the card", fmt.Sprintf(`!!%s`, workCardJS("First steps")), 10*time.Second)
	var titles int
	svc.scan(t, `SELECT count(*) FROM works WHERE title = 'First steps'`, nil, &titles)
	if titles != 1 {
		t.Errorf("%d works titled %q in the database, want the renamed one", titles, "First steps")
	}
	tb.click(workCard(tb, "First steps") + " .delete")
	gone := fmt.Sprintf(`!%s && document.querySelectorAll("#works-grid .work[data-id]").length === 1`, workCardJS("First steps"))
	confirmIfAsked(tb, gone)
	tb.waitFor("the deleted work to leave My Works", gone, 10*time.Second)

	tb.goTo("/#/works/bin")
	tb.waitFor("the deleted work in the bin", fmt.Sprintf(`!!%s`, workCardJS("First steps")), 10*time.Second)
	tb.screens("bin")
	tb.click(workCard(tb, "First steps") + " .restore")
	tb.waitFor("the restored work to leave the bin", fmt.Sprintf(`!%s`, workCardJS("First steps")), 10*time.Second)
	var deleted int
	svc.scan(t, `SELECT count(*) FROM works WHERE deleted_at IS NOT NULL`, nil, &deleted)
	if deleted != 0 {
		t.Errorf("%d works still deleted after the restore, want 0", deleted)
	}

	tb.click(`#nav a[href="#/works"]`)
	tb.waitFor("the restored work back in My Works", fmt.Sprintf(`!!%s && document.querySelectorAll("#works-grid .work[data-id]").length === 2`, workCardJS("First steps")), 10*time.Second)

	// Delete again and empty the bin: then it is gone for good.
	tb.click(workCard(tb, "First steps") + " .delete")
	confirmIfAsked(tb, "!"+workCardJS("First steps"))
	tb.waitFor("the deleted work to leave My Works", "!"+workCardJS("First steps"), 10*time.Second)
	tb.goTo("/#/works/bin")
	tb.waitFor("the deleted work in the bin", fmt.Sprintf(`!!%s`, workCardJS("First steps")), 10*time.Second)
	tb.click("#empty-bin")
	empty := `document.querySelectorAll("#works-grid .work[data-id]").length === 0`
	confirmIfAsked(tb, empty)
	tb.waitFor("an empty bin", empty, 10*time.Second)
	tb.screens("bin-empty")
	var rows, left int
	svc.scan(t, `SELECT count(*) FILTER (WHERE title = 'First steps'), count(*) FILTER (WHERE deleted_at IS NULL) FROM works`, nil, &rows, &left)
	if rows != 0 {
		t.Errorf("the emptied work is still in the database (%d rows), want it erased", rows)
	}
	if left != 1 {
		t.Errorf("%d works left in My Works after emptying the bin, want the other one", left)
	}
	tb.click(`#nav a[href="#/works"]`)
	tb.waitFor("the other work still in My Works", fmt.Sprintf(`!!%s && document.querySelectorAll("#works-grid .work[data-id]").length === 1`, workCardJS("Orbit")), 10*time.Second)
}

// workCardJS is a JavaScript expression for the card whose title is title
// (null if none).
func workCardJS(title string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#works-grid .work[data-id]")].find((w) => (w.querySelector(".work-title") || {}).innerText === %q)`, title)
}

// workCard waits for the card whose title is title and returns a selector
// for it (its data-id), so that the user's clicks land on that card.
func workCard(tb *tab, title string) string {
	tb.t.Helper()
	tb.waitFor("the card of "+title, "!!"+workCardJS(title), 10*time.Second)
	id := eval[string](tb, workCardJS(title)+".dataset.id")
	return fmt.Sprintf(`#works-grid .work[data-id=%q]`, id)
}

// confirmIfAsked presses the .confirm button of an open <dialog> if the UI
// asks for a confirmation before done (a JavaScript expression) is true.
func confirmIfAsked(tb *tab, done string) {
	tb.t.Helper()
	tb.waitFor("a confirmation or the result", visibleJS("dialog[open] .confirm")+" || ("+done+")", 10*time.Second)
	if eval[bool](tb, visibleJS("dialog[open] .confirm")) {
		tb.click("dialog[open] .confirm")
	}
}
