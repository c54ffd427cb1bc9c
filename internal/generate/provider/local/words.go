package local

import (
	"slices"
	"strings"
	"unicode"
)

// words is a prompt read for meaning: its normalised text (which seeds the
// randomness, so that "Cat" and "cat " draw the same picture) and its words.
type words struct {
	text   string
	tokens []string
}

func readWords(s string) words {
	tokens := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '&' && r != '-'
	})
	return words{text: strings.Join(tokens, " "), tokens: tokens}
}

// has reports whether any of keys occurs as a word, or, for a key with a
// space in it, as a phrase.
func (w words) has(keys ...string) bool {
	for _, k := range keys {
		if strings.Contains(k, " ") {
			if strings.Contains(" "+w.text+" ", " "+k+" ") {
				return true
			}
		} else if slices.Contains(w.tokens, k) || slices.Contains(w.tokens, k+"s") {
			return true
		}
	}
	return false
}

// theme is the kind of picture a scene paints.
type theme int

const (
	landscape theme = iota
	ocean
	cosmic
	bokeh
	abstract
	waves
	aurora
	themeCount
)

// themeOf returns the theme a word evokes.
func themeOf(word string) (theme, bool) {
	switch strings.TrimSuffix(word, "s") {
	case "mountain", "hill", "landscape", "valley", "desert", "forest", "field", "meadow",
		"countryside", "canyon", "dune", "tree", "wood", "village", "farm", "castle", "cliff":
		return landscape, true
	case "sea", "ocean", "beach", "wave", "lake", "river", "water", "coast", "island",
		"boat", "ship", "harbor", "harbour", "sail", "surf", "shore", "fish":
		return ocean, true
	case "space", "galaxy", "galaxie", "star", "planet", "cosmic", "cosmo", "nebula",
		"universe", "moon", "astronaut", "orbit", "rocket", "alien", "comet":
		return cosmic, true
	case "light", "bokeh", "bubble", "city", "night-life", "party", "dream", "firefly",
		"fireflie", "lantern", "festival", "candle", "glitter", "sparkle", "christma":
		return bokeh, true
	case "abstract", "pattern", "geometric", "geometry", "stripe", "poster", "bauhau",
		"minimal", "minimalist", "shape", "logo", "art", "modern", "graphic", "circle":
		return abstract, true
	case "flow", "flowing", "wallpaper", "silk", "fabric", "curve", "gradient", "layer",
		"paper", "ribbon", "smooth", "calm", "zen":
		return waves, true
	case "aurora", "northern", "borealis", "polar", "arctic", "snow", "ice", "winter":
		return aurora, true
	}
	return 0, false
}

// colorHue returns the hue, in degrees, that a word names.
func colorHue(word string) (float64, bool) {
	switch word {
	case "red", "crimson", "scarlet", "ruby", "blood", "cherry", "strawberry", "rose", "roses":
		return 355, true
	case "fire", "flame", "flames", "lava", "sunset", "rust", "copper":
		return 15, true
	case "orange", "autumn", "fall", "pumpkin", "tangerine", "peach", "fox":
		return 28, true
	case "gold", "golden", "amber", "honey", "sand", "desert", "bronze":
		return 42, true
	case "yellow", "lemon", "sunflower", "banana", "sunny", "sun":
		return 55, true
	case "lime", "spring", "grass", "leaf", "leaves":
		return 95, true
	case "green", "forest", "jungle", "emerald", "moss", "nature", "garden", "frog":
		return 130, true
	case "teal", "jade", "mint", "turquoise", "tropical", "lagoon":
		return 170, true
	case "cyan", "aqua", "ice", "icy", "frozen", "glacier", "water", "river":
		return 188, true
	case "sky", "ocean", "sea", "blue", "azure", "sapphire", "cobalt", "whale":
		return 212, true
	case "navy", "midnight", "indigo", "night", "denim", "storm":
		return 235, true
	case "purple", "violet", "lavender", "amethyst", "grape", "plum", "galaxy", "nebula":
		return 272, true
	case "magenta", "fuchsia", "neon", "cyberpunk", "synthwave", "vaporwave":
		return 305, true
	case "pink", "blossom", "sakura", "flamingo", "candy", "bubblegum", "love":
		return 330, true
	}
	return 0, false
}

// mood is how a prompt asks the palette to lean.
type mood struct {
	light float64 // multiplies lightness
	sat   float64 // multiplies saturation; 0 means black and white
}

func moodOf(w words) mood {
	m := mood{light: 1, sat: 1}
	if w.has("dark", "night", "moody", "gothic", "horror", "shadow", "midnight", "noir", "spooky") {
		m.light *= 0.72
	}
	if w.has("bright", "sunny", "light", "happy", "cheerful", "morning", "airy", "white") {
		m.light *= 1.15
	}
	if w.has("pastel", "soft", "gentle", "dreamy", "faded", "muted", "misty", "fog", "foggy") {
		m.sat *= 0.5
		m.light *= 1.1
	}
	if w.has("vivid", "neon", "vibrant", "psychedelic", "cyberpunk", "colorful", "colourful", "electric", "saturated") {
		m.sat *= 1.35
	}
	if w.has("black and white", "monochrome", "grayscale", "greyscale", "b&w", "noir") {
		m.sat = 0
	}
	return m
}
