package local

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"strconv"
)

// rng is a splitmix64 generator. It is written out here rather than taken
// from math/rand because the pictures must stay the same across Go releases:
// a user who saved a prompt and seed expects the same image next year.
type rng struct{ s uint64 }

// newRNG seeds an rng from the hash of parts, so that each purpose (the look
// shared by a request's images, the layout of one image) draws from its own
// stream and adding a draw to one does not shift the others.
func newRNG(parts ...string) *rng {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return &rng{s: binary.LittleEndian.Uint64(h.Sum(nil))}
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// float returns a number in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

func (r *rng) between(lo, hi float64) float64 { return lo + (hi-lo)*r.float() }

// intn returns a number in [0, n).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

func (r *rng) chance(p float64) bool { return r.float() < p }

// sign returns -1 or 1.
func (r *rng) sign() float64 {
	if r.next()&1 == 0 {
		return -1
	}
	return 1
}

// mix64 is splitmix64's finaliser: it scrambles every bit of x into every
// bit of the result.
func mix64(x uint64) uint64 {
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// hash2 returns a well-mixed number for the lattice point (x, y).
func hash2(x, y int64, seed uint64) uint64 {
	return mix64(seed ^ mix64(uint64(x)*0x9e3779b97f4a7c15^uint64(y)*0xc2b2ae3d27d4eb4f))
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// valueNoise is smooth noise in [0, 1] with features about one unit apart.
func valueNoise(x, y float64, seed uint64) float64 {
	fx, fy := math.Floor(x), math.Floor(y)
	ix, iy := int64(fx), int64(fy)
	tx, ty := x-fx, y-fy
	tx = tx * tx * (3 - 2*tx)
	ty = ty * ty * (3 - 2*ty)
	a := unit(hash2(ix, iy, seed))
	b := unit(hash2(ix+1, iy, seed))
	c := unit(hash2(ix, iy+1, seed))
	d := unit(hash2(ix+1, iy+1, seed))
	return lerp(lerp(a, b, tx), lerp(c, d, tx), ty)
}

// fbm layers octaves of valueNoise, each twice as fine and half as strong,
// into cloud-like noise in [0, 1].
func fbm(x, y float64, seed uint64, octaves int) float64 {
	sum, amp, norm := 0.0, 1.0, 0.0
	for i := range octaves {
		sum += amp * valueNoise(x, y, seed+uint64(i)*0x632be59bd9b4e019)
		norm += amp
		amp *= 0.5
		// Not exactly 2, so that the octaves' lattices do not line up.
		x, y = x*2.03+17.1, y*2.03+5.3
	}
	return sum / norm
}
