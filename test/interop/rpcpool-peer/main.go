// rpcpool-peer: the Go reference for meshfed's pooled msgpack-RPC benchmark. It speaks what a
// Consul server pool speaks: type byte 4, a yamux session, one net/rpc msgpack codec per stream.
//
//	rpcpool-peer -mode server -addr 127.0.0.1:0      prints "listening <addr>"
//	rpcpool-peer -mode client -addr A -conc N -duration 3s
//	                                                 prints "calls=<n> seconds=<s> p50_us=<x> p99_us=<y>"
package main

import (
	"flag"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"sort"
	"sync"
	"time"

	msgpackrpc "github.com/hashicorp/net-rpc-msgpackrpc"
	"github.com/hashicorp/yamux"
)

// Empty is Status.Ping's argument and reply.
type Empty struct{}

// Status answers Status.Ping.
type Status struct{}

// Ping does nothing, as Consul's does.
func (s *Status) Ping(args *Empty, reply *Empty) error { return nil }

func serve(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Status", &Status{}); err != nil {
		return err
	}
	fmt.Printf("listening %s\n", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func(c net.Conn) {
			b := make([]byte, 1)
			if _, err := c.Read(b); err != nil || b[0] != 4 {
				c.Close()
				return
			}
			cfg := yamux.DefaultConfig()
			cfg.LogOutput = os.Stderr
			sess, err := yamux.Server(c, cfg)
			if err != nil {
				c.Close()
				return
			}
			for {
				st, err := sess.Accept()
				if err != nil {
					return
				}
				go srv.ServeCodec(msgpackrpc.NewServerCodec(st))
			}
		}(c)
	}
}

func client(addr string, conc int, d time.Duration) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	if _, err := c.Write([]byte{4}); err != nil {
		return err
	}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = os.Stderr
	sess, err := yamux.Client(c, cfg)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	errs := make(chan error, conc)
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := sess.Open()
			if err != nil {
				errs <- err
				return
			}
			cl := rpc.NewClientWithCodec(msgpackrpc.NewClientCodec(st))
			local := make([]time.Duration, 0, 1<<16)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := cl.Call("Status.Ping", &Empty{}, &Empty{}); err != nil {
					errs <- err
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		return err
	default:
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(float64(len(lat)-1)*p)].Nanoseconds()) / 1000
	}
	fmt.Printf("calls=%d seconds=%.3f p50_us=%.1f p99_us=%.1f\n", len(lat), elapsed.Seconds(), pct(0.5), pct(0.99))
	sess.Close()
	return nil
}

func main() {
	mode := flag.String("mode", "server", "server or client")
	addr := flag.String("addr", "127.0.0.1:0", "listen or dial address")
	conc := flag.Int("conc", 1, "concurrent callers (one stream each)")
	dur := flag.Duration("duration", 3*time.Second, "client run time")
	flag.Parse()
	var err error
	if *mode == "server" {
		err = serve(*addr)
	} else {
		err = client(*addr, *conc, *dur)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
