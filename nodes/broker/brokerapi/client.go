package brokerapi

import (
	"context"
	"sync"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
)

// Full method names (from the generated stubs).
const (
	MethodPublish   = Broker_Publish_FullMethodName
	MethodGet       = Broker_Get_FullMethodName
	MethodSubscribe = Broker_Subscribe_FullMethodName
)

// Client keeps one connection to a broker, dialled on first use and again
// after any failed call. It is safe for concurrent use.
type Client struct {
	net         net.Network
	clock       clock.Clock
	addr        string
	callTimeout time.Duration

	mu   sync.Mutex
	conn net.Conn
}

// NewClient returns a client of the broker at addr; every dial and call is
// bounded by callTimeout.
func NewClient(n net.Network, clk clock.Clock, addr string, callTimeout time.Duration) *Client {
	return &Client{net: n, clock: clk, addr: addr, callTimeout: callTimeout}
}

// Addr is the broker's address.
func (c *Client) Addr() string { return c.addr }

func (c *Client) get(ctx context.Context) (net.Conn, error) {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		return conn, nil
	}
	ctx, cancel := clock.WithTimeout(c.clock, ctx, c.callTimeout)
	defer cancel()
	conn, err := c.net.Dial(ctx, c.addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		_ = conn.Close()
		return c.conn, nil
	}
	c.conn = conn
	return conn, nil
}

func (c *Client) drop(conn net.Conn) {
	c.mu.Lock()
	if c.conn == conn {
		c.conn = nil
	}
	c.mu.Unlock()
	_ = conn.Close()
}

// Publish sends one safekeeper's state of one timeline.
func (c *Client) Publish(ctx context.Context, info *SafekeeperTimelineInfo) error {
	conn, err := c.get(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := clock.WithTimeout(c.clock, ctx, c.callTimeout)
	defer cancel()
	if _, err := net.CallProto[*PublishResponse](ctx, conn, MethodPublish, info); err != nil {
		c.drop(conn)
		return err
	}
	return nil
}

// Get returns the entries matching f, each with its age.
func (c *Client) Get(ctx context.Context, f *TimelineFilter) ([]*SafekeeperTimelineInfo, error) {
	conn, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := clock.WithTimeout(c.clock, ctx, c.callTimeout)
	defer cancel()
	resp, err := net.CallProto[*TimelineInfos](ctx, conn, MethodGet, f)
	if err != nil {
		c.drop(conn)
		return nil, err
	}
	return resp.GetInfos(), nil
}

// Close closes the cached connection, if any.
func (c *Client) Close() error {
	c.mu.Lock()
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if conn == nil {
		return nil
	}
	return conn.Close()
}
