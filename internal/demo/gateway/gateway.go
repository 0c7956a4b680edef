// Package gateway is the demo's third-party payment gateway and the adapter
// that lets Settle ask it for a transaction's outcome.
//
// The gateway stands for a payment provider of another company: it offers
// no Try, Confirm or Cancel, only "pay an order", "query an order" and
// "close an unpaid order" (after which it refuses to take the payment),
// the API most providers have. Its replies can be lost: Settle cannot make
// the payment a TCC branch, but it can make the payment the decision. The
// initiator begins its transaction with the adapter as its decider, tries
// its own branches, then pays; if the reply is lost, it does nothing more,
// and at the deadline the coordinator asks the adapter, which queries the
// gateway and answers COMMIT for a paid order, or closes an unpaid one and
// answers ABORT (docs/initiators.md, "A third party as the decider").
//
// The gateway keeps its orders in memory: it is a stand-in for a remote
// service in the demo and in tests, not a product.
package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"unicode/utf8"
)

// Status is an order's state at the gateway.
type Status string

// The order states. An order the gateway has never seen is Unknown; a
// closed order can no longer be paid, a paid one no longer closed.
const (
	Unknown Status = "unknown"
	Unpaid  Status = "unpaid"
	Paid    Status = "paid"
	Closed  Status = "closed"
)

// MaxOrderID bounds an order id in bytes (a gid is at most 128).
const MaxOrderID = 128

// Order is an order as the gateway answers it.
type Order struct {
	OrderID string `json:"order_id"`
	Status  Status `json:"status"`
	// Amount is in cents; 0 for an order never paid.
	Amount int64 `json:"amount"`
}

// Gateway is the fake payment gateway: an http.Handler serving
//
//	POST /pay                 {"order_id": "...", "amount": 1500}
//	                          200 the order (paid; a repeat is the same answer),
//	                          409 the order when it is closed
//	GET  /orders/{id}         200 the order (status "unknown" if never seen)
//	POST /orders/{id}/close   200 the order (closed; a repeat is the same answer),
//	                          409 the order when it is paid
//
// Bad requests get 400 with {"error": "..."}.
type Gateway struct {
	mu     sync.Mutex
	orders map[string]*Order
	lose   int  // pay replies still to lose
	down   bool // every request answered 503
	pays   int  // payments applied
	mux    *http.ServeMux
}

// New returns an empty gateway.
func New() *Gateway {
	g := &Gateway{orders: map[string]*Order{}}
	g.mux = http.NewServeMux()
	g.mux.HandleFunc("POST /pay", g.pay)
	g.mux.HandleFunc("GET /orders/{id}", g.query)
	g.mux.HandleFunc("POST /orders/{id}/close", g.close)
	return g
}

// LosePayReplies makes the next n payments apply and then lose their reply:
// the connection is closed before anything is written, as when the
// network fails after the provider took the money.
func (g *Gateway) LosePayReplies(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lose = n
}

// SetDown makes the gateway answer every request with 503 (down is true)
// or serve again.
func (g *Gateway) SetDown(down bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.down = down
}

// Order returns the gateway's view of an order (for tests and the demo).
func (g *Gateway) Order(id string) Order {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.order(id)
}

// Payments is the number of payments applied (a repeat is not one).
func (g *Gateway) Payments() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pays
}

func (g *Gateway) order(id string) Order {
	if o, ok := g.orders[id]; ok {
		return *o
	}
	return Order{OrderID: id, Status: Unknown}
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	down := g.down
	g.mu.Unlock()
	if down {
		writeError(w, http.StatusServiceUnavailable, "the gateway is down")
		return
	}
	g.mux.ServeHTTP(w, r)
}

func (g *Gateway) pay(w http.ResponseWriter, r *http.Request) {
	var req struct {
		OrderID string `json:"order_id"`
		Amount  int64  `json:"amount"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be {\"order_id\": string, \"amount\": integer cents}")
		return
	}
	if err := checkID(req.OrderID); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Amount <= 0 {
		writeError(w, http.StatusBadRequest, "amount must be a positive number of cents")
		return
	}
	g.mu.Lock()
	o, ok := g.orders[req.OrderID]
	if !ok {
		o = &Order{OrderID: req.OrderID, Status: Unpaid}
		g.orders[req.OrderID] = o
	}
	code := http.StatusOK
	switch o.Status {
	case Closed:
		code = http.StatusConflict
	case Paid:
		if o.Amount != req.Amount {
			g.mu.Unlock()
			writeError(w, http.StatusConflict, "the order was paid with another amount")
			return
		}
	default:
		o.Status, o.Amount = Paid, req.Amount
		g.pays++
	}
	answer := *o
	lose := code == http.StatusOK && g.lose > 0
	if lose {
		g.lose--
	}
	g.mu.Unlock()
	if lose {
		loseReply(w)
		return
	}
	writeJSON(w, code, answer)
}

func (g *Gateway) query(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkID(id); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, g.Order(id))
}

func (g *Gateway) close(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkID(id); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	g.mu.Lock()
	o, ok := g.orders[id]
	if !ok {
		// Closing an order never seen records it closed: a payment
		// arriving late is refused.
		o = &Order{OrderID: id, Status: Unpaid}
		g.orders[id] = o
	}
	code := http.StatusOK
	if o.Status == Paid {
		code = http.StatusConflict
	} else {
		o.Status = Closed
	}
	answer := *o
	g.mu.Unlock()
	writeJSON(w, code, answer)
}

func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("order_id is required")
	case len(id) > MaxOrderID:
		return fmt.Errorf("order_id is longer than %d bytes", MaxOrderID)
	case !utf8.ValidString(id):
		return errors.New("order_id is not valid UTF-8")
	}
	return nil
}

// loseReply closes the connection without a response.
func loseReply(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // HTTP/2: abort the stream, nothing written
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
