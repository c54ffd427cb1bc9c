package stripemock

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDiesWithTestBinary runs this test binary as a child that starts
// stripe-mock and prints its URL, kills the child with SIGKILL (no cleanup
// can run), and checks that stripe-mock stops answering.
func TestDiesWithTestBinary(t *testing.T) {
	if os.Getenv("STRIPEMOCK_CHILD") == "1" {
		os.Stdout.WriteString("url=" + URL(t) + "\n")
		time.Sleep(time.Minute) // killed long before
		return
	}
	URL(t) // installs stripe-mock first, so the child only starts it

	child := exec.Command(os.Args[0], "-test.run=^TestDiesWithTestBinary$", "-test.count=1")
	child.Env = append(os.Environ(), "STRIPEMOCK_CHILD=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	started := time.Now()
	if err := child.Start(); err != nil {
		t.Fatalf("start child test binary: %v", err)
	}
	defer child.Process.Kill()
	var url string
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "url="); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatalf("the child test binary printed no stripe-mock URL")
	}
	t.Logf("child test binary started and got stripe-mock answering in %s", time.Since(started).Round(time.Millisecond))
	if !answers(url) {
		t.Fatalf("the child's stripe-mock at %s does not answer", url)
	}

	if err := child.Process.Kill(); err != nil {
		t.Fatalf("kill child: %v", err)
	}
	_ = child.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for answers(url) {
		if time.Now().After(deadline) {
			t.Fatalf("stripe-mock at %s still answers 10s after its test binary was killed", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
