package billing

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// ItemKind says how an item is sold.
type ItemKind string

// The kinds of catalog items.
const (
	// Pack is a credit pack, bought once (Checkout mode=payment).
	Pack ItemKind = "pack"
	// Plan is a subscription plan: credits every period, and limits
	// (Checkout mode=subscription).
	Plan ItemKind = "plan"
)

// Interval is a plan's billing period.
type Interval string

// The billing periods of plans.
const (
	Month Interval = "month"
	Year  Interval = "year"
)

// Item is one thing on sale.
type Item struct {
	// Code is the item's stable name in our API and in Stripe metadata.
	Code string   `json:"code"`
	Name string   `json:"name"`
	Kind ItemKind `json:"kind"`
	// Interval is a plan's billing period (empty for packs).
	Interval Interval `json:"interval,omitempty"`
	// Credits a pack brings, or a plan brings each period.
	Credits int64 `json:"credits"`
	// Price in the currency's minor unit (cents).
	Price    int64  `json:"price"`
	Currency string `json:"currency"`
	// LookupKey names the item's Stripe Price.
	LookupKey string `json:"lookupKey"`
	// A plan's limits while it is active; 0 keeps the settings' default.
	StorageQuotaBytes int64 `json:"storageQuotaBytes,omitempty"`
	RunningJobsLimit  int   `json:"runningJobsLimit,omitempty"`
}

// Catalog is what is on sale, in the order it is shown.
type Catalog struct {
	Items []Item `json:"items"`
}

//go:embed catalog.json
var defaultCatalog []byte

// DefaultCatalog is the built-in catalog.
func DefaultCatalog() *Catalog {
	c, err := ParseCatalog(defaultCatalog)
	if err != nil {
		panic("billing: the built-in catalog is invalid: " + err.Error())
	}
	return c
}

// LoadCatalog reads the catalog from path, or returns the built-in one when
// path is empty.
func LoadCatalog(path string) (*Catalog, error) {
	if path == "" {
		return DefaultCatalog(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	c, err := ParseCatalog(b)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	return c, nil
}

var (
	codePattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	lookupPattern   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,200}$`)
	currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)
)

// ParseCatalog decodes and checks a catalog, reporting every problem.
func ParseCatalog(b []byte) (*Catalog, error) {
	var c Catalog
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("not a catalog: %w", err)
	}
	var problems []string
	bad := func(i int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("item %d: ", i+1)+fmt.Sprintf(format, args...))
	}
	codes, keys := map[string]bool{}, map[string]bool{}
	for i, it := range c.Items {
		if !codePattern.MatchString(it.Code) {
			bad(i, "code %q must be 1 to 63 lowercase letters, digits and dashes", it.Code)
		}
		if codes[it.Code] {
			bad(i, "code %q appears twice", it.Code)
		}
		codes[it.Code] = true
		if !lookupPattern.MatchString(it.LookupKey) {
			bad(i, "lookupKey %q must be 1 to 200 letters, digits, dots, dashes or underscores", it.LookupKey)
		}
		if keys[it.LookupKey] {
			bad(i, "lookupKey %q appears twice", it.LookupKey)
		}
		keys[it.LookupKey] = true
		if it.Name == "" || len(it.Name) > 100 {
			bad(i, "name must be 1 to 100 characters")
		}
		if it.Credits <= 0 || it.Credits > 10_000_000 {
			bad(i, "credits must be between 1 and 10000000")
		}
		if it.Price <= 0 || it.Price > 100_000_000 {
			bad(i, "price must be between 1 and 100000000 (minor units)")
		}
		if !currencyPattern.MatchString(it.Currency) {
			bad(i, "currency %q must be a lowercase ISO code such as usd", it.Currency)
		}
		if it.StorageQuotaBytes < 0 || it.RunningJobsLimit < 0 || it.RunningJobsLimit > 100 {
			bad(i, "storageQuotaBytes must not be negative and runningJobsLimit must be between 0 and 100")
		}
		switch it.Kind {
		case Pack:
			if it.Interval != "" || it.StorageQuotaBytes != 0 || it.RunningJobsLimit != 0 {
				bad(i, "a pack has no interval and no limits")
			}
		case Plan:
			if it.Interval != Month && it.Interval != Year {
				bad(i, "a plan's interval must be month or year")
			}
		default:
			bad(i, "kind must be pack or plan, not %q", it.Kind)
		}
	}
	if len(c.Items) == 0 {
		problems = append(problems, "it lists no items")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return &c, nil
}

// Find returns the item with code.
func (c *Catalog) Find(code string) (Item, bool) {
	for _, it := range c.Items {
		if it.Code == code {
			return it, true
		}
	}
	return Item{}, false
}

// ByLookupKey returns the item whose Stripe Price has key.
func (c *Catalog) ByLookupKey(key string) (Item, bool) {
	for _, it := range c.Items {
		if it.LookupKey == key {
			return it, true
		}
	}
	return Item{}, false
}
