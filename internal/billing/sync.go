package billing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stripe/stripe-go/v76"

	"github.com/fastimage/api/internal/apperr"
)

// SyncAction says what SyncCatalog did to a Stripe object.
type SyncAction string

// The actions of a catalog sync.
const (
	SyncCreated   SyncAction = "created"
	SyncUpdated   SyncAction = "updated"
	SyncUnchanged SyncAction = "unchanged"
)

// SyncItem is what SyncCatalog did for one catalog item.
type SyncItem struct {
	Code      string
	LookupKey string
	// ProductID is the item's Stripe Product (see ProductID).
	ProductID string
	Product   SyncAction
	// PriceID is the Stripe Price that holds the item's lookup key after
	// the sync.
	PriceID string
	// Price is SyncUpdated when the price that held the lookup key did not
	// match the catalog: Stripe's prices cannot change, so a new one took
	// the lookup key from ReplacedPriceID, which stays as it was for the
	// subscriptions already on it.
	Price           SyncAction
	ReplacedPriceID string
	// Changes says, in words, what differed from the catalog in what was
	// there ("amount 500 usd → 600 usd"); empty when both are unchanged or
	// were created.
	Changes []string
}

// SyncReport is what a catalog sync did, item by item in catalog order.
type SyncReport struct {
	Items []SyncItem
}

// Changed says whether the sync created or updated anything in Stripe.
func (r SyncReport) Changed() bool {
	for _, it := range r.Items {
		if it.Product != SyncUnchanged || it.Price != SyncUnchanged {
			return true
		}
	}
	return false
}

// ProductID is the id of the Stripe Product of the item with code.
//
// Stripe lets the creator of a product choose its id, unique in the
// account, so the id is derived from the code rather than looked up: a
// retrieve by id is strongly consistent, where Stripe's search is eventually
// consistent (a product created a moment ago may not be found, and created
// twice) and listing every product to match metadata costs a page per 100
// products. Two syncs racing to create it cannot make two either: the
// second create is refused as a duplicate. Codes hold no underscore, so
// turning their dashes into underscores keeps ids distinct and within the
// letters, digits and underscores every Stripe id is made of.
func ProductID(code string) string {
	return "fastimage_" + strings.ReplaceAll(code, "-", "_")
}

// SyncCatalog makes Stripe sell what the catalog lists: one Product per
// item (ProductID, with the item's name and fastimage_catalog_code in its
// metadata) and an active Price holding the item's lookup key, with its
// amount, currency and, for a plan, its monthly or yearly interval. What
// already matches is left alone, so a second run changes nothing. A price
// that does not match is never edited (Stripe's prices are immutable): a
// new one is created and takes over the lookup key. Items Stripe has that
// the catalog no longer lists are left alone.
//
// On a failure the report holds the items synced before it. Returns
// PAYMENTS_DISABLED when payments are off and UNAVAILABLE, with Stripe's
// reason, when Stripe refuses or cannot be reached.
func (s *Service) SyncCatalog(ctx context.Context) (SyncReport, error) {
	if err := s.requireEnabled(); err != nil {
		return SyncReport{}, err
	}
	var report SyncReport
	for _, item := range s.catalog.Items {
		synced, err := s.syncItem(ctx, item)
		if err != nil {
			return report, err
		}
		report.Items = append(report.Items, synced)
	}
	return report, nil
}

func (s *Service) syncItem(ctx context.Context, item Item) (SyncItem, error) {
	out := SyncItem{Code: item.Code, LookupKey: item.LookupKey, ProductID: ProductID(item.Code)}

	product, err := s.findProduct(ctx, out.ProductID)
	if err != nil {
		return out, err
	}
	if product == nil {
		if _, err = s.createProduct(ctx, item); err != nil {
			return out, err
		}
		out.Product = SyncCreated
	} else if changes := productChanges(product, item); len(changes) > 0 {
		if _, err = s.updateProduct(ctx, item); err != nil {
			return out, err
		}
		out.Product = SyncUpdated
		out.Changes = append(out.Changes, changes...)
	} else {
		out.Product = SyncUnchanged
	}

	current, err := s.findPrice(ctx, item.LookupKey)
	if err != nil {
		return out, err
	}
	switch changes := priceChanges(current, item, out.ProductID); {
	case current == nil:
		out.Price = SyncCreated
	case len(changes) == 0:
		out.Price, out.PriceID = SyncUnchanged, current.ID
		return out, nil
	default:
		out.Price, out.ReplacedPriceID = SyncUpdated, current.ID
		out.Changes = append(out.Changes, changes...)
	}
	price, err := s.createPrice(ctx, item, out.ProductID)
	if err != nil {
		return out, err
	}
	out.PriceID = price.ID
	return out, nil
}

// findProduct returns the product with id, or nil when Stripe has none.
func (s *Service) findProduct(ctx context.Context, id string) (*stripe.Product, error) {
	params := &stripe.ProductParams{}
	params.Context = ctx
	p, err := s.api.Products.Get(id, params)
	if stripeCode(err) == stripe.ErrorCodeResourceMissing {
		return nil, nil
	}
	if err != nil {
		return nil, syncError("read the product "+id, err)
	}
	return p, nil
}

// createProduct creates the item's product. When another sync created it
// first, that one is updated to the item instead.
func (s *Service) createProduct(ctx context.Context, item Item) (*stripe.Product, error) {
	params := &stripe.ProductParams{
		ID:   stripe.String(ProductID(item.Code)),
		Name: stripe.String(item.Name),
	}
	params.Context = ctx
	params.AddMetadata(metaCode, item.Code)
	p, err := s.api.Products.New(params)
	if stripeCode(err) == stripe.ErrorCodeResourceAlreadyExists {
		return s.updateProduct(ctx, item)
	}
	if err != nil {
		return nil, syncError("create the product "+ProductID(item.Code), err)
	}
	return p, nil
}

// updateProduct sets the item's name, code and availability on its product.
func (s *Service) updateProduct(ctx context.Context, item Item) (*stripe.Product, error) {
	params := &stripe.ProductParams{
		Name:   stripe.String(item.Name),
		Active: stripe.Bool(true),
	}
	params.Context = ctx
	params.AddMetadata(metaCode, item.Code)
	p, err := s.api.Products.Update(ProductID(item.Code), params)
	if err != nil {
		return nil, syncError("update the product "+ProductID(item.Code), err)
	}
	return p, nil
}

// productChanges lists how p differs from what item says it should be.
func productChanges(p *stripe.Product, item Item) []string {
	var changes []string
	if p.Name != item.Name {
		changes = append(changes, fmt.Sprintf("name %q → %q", p.Name, item.Name))
	}
	if !p.Active {
		// Checkout refuses the prices of an archived product.
		changes = append(changes, "product unarchived")
	}
	if p.Metadata[metaCode] != item.Code {
		changes = append(changes, "product's "+metaCode+" set")
	}
	return changes
}

// findPrice returns the active price that holds lookupKey, or nil.
func (s *Service) findPrice(ctx context.Context, lookupKey string) (*stripe.Price, error) {
	params := &stripe.PriceListParams{
		LookupKeys: stripe.StringSlice([]string{lookupKey}),
		Active:     stripe.Bool(true),
	}
	params.Context = ctx
	// A lookup key belongs to one price at most.
	params.Limit = stripe.Int64(1)
	it := s.api.Prices.List(params)
	if it.Next() {
		return it.Price(), nil
	}
	if err := it.Err(); err != nil {
		return nil, syncError("list the prices with lookup key "+lookupKey, err)
	}
	return nil, nil
}

// createPrice creates the item's price on product, taking the lookup key
// from whichever price held it (an archived one included: Stripe keeps
// lookup keys unique over all prices).
func (s *Service) createPrice(ctx context.Context, item Item, product string) (*stripe.Price, error) {
	params := &stripe.PriceParams{
		Product:           stripe.String(product),
		UnitAmount:        stripe.Int64(item.Price),
		Currency:          stripe.String(item.Currency),
		LookupKey:         stripe.String(item.LookupKey),
		TransferLookupKey: stripe.Bool(true),
	}
	params.Context = ctx
	if item.Kind == Plan {
		params.Recurring = &stripe.PriceRecurringParams{
			Interval:      stripe.String(string(item.Interval)),
			IntervalCount: stripe.Int64(1),
		}
	}
	params.AddMetadata(metaCode, item.Code)
	p, err := s.api.Prices.New(params)
	if err != nil {
		return nil, syncError("create a price for "+item.LookupKey, err)
	}
	return p, nil
}

// priceChanges lists how p differs from the price item sells at, on
// product (nothing when p is nil).
func priceChanges(p *stripe.Price, item Item, product string) []string {
	if p == nil {
		return nil
	}
	var changes []string
	if p.UnitAmount != item.Price || string(p.Currency) != item.Currency {
		changes = append(changes, fmt.Sprintf("amount %d %s → %d %s", p.UnitAmount, p.Currency, item.Price, item.Currency))
	}
	if p.CustomUnitAmount != nil || p.BillingScheme == stripe.PriceBillingSchemeTiered || p.TransformQuantity != nil {
		changes = append(changes, "not a fixed price")
	}
	if got, want := priceInterval(p), string(item.Interval); got != want {
		changes = append(changes, fmt.Sprintf("interval %s → %s", orOnce(got), orOnce(want)))
	}
	if p.Product == nil || p.Product.ID != product {
		var was string
		if p.Product != nil {
			was = p.Product.ID
		}
		changes = append(changes, fmt.Sprintf("product %s → %s", was, product))
	}
	return changes
}

// priceInterval is the billing period of a recurring price ("" for a
// one-time one); a period of several intervals is spelled out, so that it
// never equals a catalog interval.
func priceInterval(p *stripe.Price) string {
	if p.Recurring == nil {
		return ""
	}
	if p.Recurring.IntervalCount > 1 {
		return fmt.Sprintf("%d %ss", p.Recurring.IntervalCount, p.Recurring.Interval)
	}
	return string(p.Recurring.Interval)
}

func orOnce(interval string) string {
	if interval == "" {
		return "one-time"
	}
	return interval
}

// stripeCode is the code of the Stripe error err is, or "".
func stripeCode(err error) stripe.ErrorCode {
	var se *stripe.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

// syncError is a failed Stripe call of a sync. It is shown to the operator
// who ran it, so it carries Stripe's own reason.
func syncError(what string, err error) error {
	var se *stripe.Error
	reason := err.Error()
	if errors.As(err, &se) && se.Msg != "" {
		reason = se.Msg
		if se.RequestID != "" {
			reason += " (request " + se.RequestID + ")"
		}
	}
	return apperr.Errorf(apperr.Unavailable, "Stripe could not %s: %s", what, reason)
}
