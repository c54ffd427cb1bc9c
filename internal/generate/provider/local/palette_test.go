package local

import "testing"

func TestPaletteFollowsColourWords(t *testing.T) {
	tests := []struct {
		name, prompt, negative string
		wantFirst              float64 // -1: any
		avoid                  float64 // -1: none
	}{
		{"named colour leads", "a red balloon over the sea", "", 355, -1},
		{"second colour word", "purple and gold sunset", "", 272, -1},
		{"negative colour is avoided", "a fox in the autumn forest", "orange", -1, 28},
		{"no colour words", "a quiet afternoon", "", -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPalette(readWords(tt.prompt), readWords(tt.negative), newRNG("look", tt.prompt), newRNG("vary", tt.prompt))
			if tt.wantFirst >= 0 {
				if d := hueDistance(p.hues[0], tt.wantFirst); d > 10 {
					t.Errorf("first hue: got %.0f, want within 10° of %.0f", p.hues[0], tt.wantFirst)
				}
			}
			if tt.avoid >= 0 {
				for i, h := range p.hues {
					if d := hueDistance(h, tt.avoid); d < 35 {
						t.Errorf("hue %d: got %.0f, want at least 35° from %.0f", i, h, tt.avoid)
					}
				}
			}
			if p.sat <= 0 || p.sat > 1 {
				t.Errorf("saturation: got %v, want in (0, 1]", p.sat)
			}
		})
	}
}

func TestThemeFollowsWords(t *testing.T) {
	tests := []struct {
		prompt string
		want   theme
	}{
		{"snowy mountains", landscape},
		{"a boat on the lake", ocean},
		{"astronaut among the stars", cosmic},
		{"city lights at night", bokeh},
		{"geometric poster", abstract},
		{"flowing silk", waves},
		{"northern lights", aurora},
	}
	for _, tt := range tests {
		t.Run(tt.prompt, func(t *testing.T) {
			var got theme = -1
			for _, w := range readWords(tt.prompt).tokens {
				if th, ok := themeOf(w); ok {
					got = th
					break
				}
			}
			if got != tt.want {
				t.Errorf("theme: got %v, want %v", got, tt.want)
			}
		})
	}
}
