package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/httpparticipant"
)

// Client calls a gateway over HTTP.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client of the gateway at base (e.g.
// "http://127.0.0.1:7600"). hc nil: a client with a 5 s timeout.
func NewClient(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	return &Client{base: strings.TrimRight(base, "/"), hc: hc}
}

// ErrClosed: the gateway refused the payment because the order is closed
// (the adapter closed it: the transaction was aborted).
var ErrClosed = errors.New("gateway: the order is closed")

// ErrPaid: the gateway refused to close the order because it is paid.
var ErrPaid = errors.New("gateway: the order is paid")

// Pay pays orderID. A nil error means the gateway answered "paid"; an
// error wrapping ErrClosed is a definite refusal; any other error (a lost
// reply, a timeout, a 5xx) leaves the payment's outcome unknown.
func (c *Client) Pay(ctx context.Context, orderID string, cents int64) (Order, error) {
	body, _ := json.Marshal(map[string]any{"order_id": orderID, "amount": cents})
	o, code, err := c.do(ctx, http.MethodPost, "/pay", body)
	if err != nil {
		return o, err
	}
	if code == http.StatusConflict && o.Status == Closed {
		return o, fmt.Errorf("pay %s: %w", orderID, ErrClosed)
	}
	if code != http.StatusOK {
		return o, fmt.Errorf("pay %s: the gateway answered %d", orderID, code)
	}
	return o, nil
}

// Query returns the gateway's view of orderID.
func (c *Client) Query(ctx context.Context, orderID string) (Order, error) {
	o, code, err := c.do(ctx, http.MethodGet, "/orders/"+url.PathEscape(orderID), nil)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("query %s: the gateway answered %d", orderID, code)
	}
	return o, err
}

// Close closes orderID if it is not paid; an error wrapping ErrPaid says it
// is paid.
func (c *Client) Close(ctx context.Context, orderID string) (Order, error) {
	o, code, err := c.do(ctx, http.MethodPost, "/orders/"+url.PathEscape(orderID)+"/close", nil)
	if err != nil {
		return o, err
	}
	if code == http.StatusConflict && o.Status == Paid {
		return o, fmt.Errorf("close %s: %w", orderID, ErrPaid)
	}
	if code != http.StatusOK {
		return o, fmt.Errorf("close %s: the gateway answered %d", orderID, code)
	}
	return o, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte) (Order, int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return Order{}, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Order{}, 0, err
	}
	defer resp.Body.Close()
	var o Order
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusConflict {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&o); err != nil {
			return Order{}, resp.StatusCode, fmt.Errorf("gateway %s %s: unreadable answer: %w", method, path, err)
		}
	}
	return o, resp.StatusCode, nil
}

// Adapter answers Settle's decider question for transactions whose
// decision is a payment at the gateway (the order id is the gid): a paid
// order is COMMIT; an order not paid is closed first, so that a payment
// still on its way is refused, and then ABORT. If the gateway cannot be
// asked, the answer is UNAVAILABLE and the coordinator asks again later;
// the transaction stays undecided meanwhile.
//
// Serve it over gRPC (tccv1.RegisterDeciderServiceServer) or HTTP
// (ServeHTTP, the decider's HTTP contract: POST <base>/decide).
type Adapter struct {
	tccv1.UnimplementedDeciderServiceServer
	gw   *Client
	http http.Handler
}

var _ tccv1.DeciderServiceServer = (*Adapter)(nil)

// NewAdapter returns an adapter over the gateway client gw.
func NewAdapter(gw *Client) *Adapter {
	a := &Adapter{gw: gw}
	a.http = httpparticipant.DeciderHandler(a)
	return a
}

// Decide implements tccv1.DeciderServiceServer.
func (a *Adapter) Decide(ctx context.Context, req *tccv1.DecideRequest) (*tccv1.DecideResponse, error) {
	gid := req.GetGid()
	if err := checkID(gid); err != nil {
		return nil, status.Error(codes.InvalidArgument, "decider: "+err.Error())
	}
	o, err := a.gw.Query(ctx, gid)
	if err != nil {
		return nil, status.Error(codes.Unavailable, "decider: the payment gateway could not be queried")
	}
	if o.Status != Paid && o.Status != Closed {
		// Unknown or unpaid: close it, so that the payment can no longer
		// succeed. Closing a paid order is refused: it was paid meanwhile.
		o, err = a.gw.Close(ctx, gid)
		if err != nil && !errors.Is(err, ErrPaid) {
			return nil, status.Error(codes.Unavailable, "decider: the order could not be closed at the payment gateway")
		}
	}
	if o.Status == Paid {
		return &tccv1.DecideResponse{Outcome: tccv1.Outcome_OUTCOME_COMMIT}, nil
	}
	return &tccv1.DecideResponse{Outcome: tccv1.Outcome_OUTCOME_ABORT}, nil
}

// ServeHTTP serves the decider's HTTP contract.
func (a *Adapter) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.http.ServeHTTP(w, r) }
