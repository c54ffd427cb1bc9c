package legal_test

import (
	"strings"
	"testing"

	"github.com/fastimage/api/internal/legal"
)

// Every built-in version has its text, with the site's host in it, and
// the lists of the text are kept together.
func TestBuiltInTexts(t *testing.T) {
	for _, d := range legal.BuiltIn(nil) {
		text, ok := legal.Text(d.Kind, "site.example")
		if !ok {
			t.Fatalf("%s: no built-in text", d.Kind)
		}
		if text.Version != d.Version || !text.EffectiveAt.Equal(d.EffectiveAt) {
			t.Errorf("%s: text of version %s (%v), want %s (%v)", d.Kind, text.Version, text.EffectiveAt, d.Version, d.EffectiveAt)
		}
		if len(text.Blocks) == 0 || !strings.Contains(text.Blocks[0].Text, "FastImage (site.example)") {
			t.Errorf("%s: first block %+v, want it to name FastImage at the site", d.Kind, text.Blocks[:1])
		}
		for i, b := range text.Blocks {
			if strings.Contains(b.Text, "{{") || (b.Items != nil && b.Text != "") {
				t.Errorf("%s block %d: %+v", d.Kind, i, b)
			}
			if i > 0 && b.Items != nil && text.Blocks[i-1].Items != nil {
				t.Errorf("%s block %d: a list split in two", d.Kind, i)
			}
		}
	}
	policy, _ := legal.Text(legal.PrivacyPolicy, "site.example")
	lists := 0
	for _, b := range policy.Blocks {
		if b.Items != nil {
			lists++
		}
	}
	// What is collected, how it is used, who it is shared with.
	if lists != 3 {
		t.Errorf("the privacy policy has %d lists, want 3", lists)
	}
	if _, ok := legal.Text("cookies", "site.example"); ok {
		t.Error("a text for an unknown kind")
	}
}
