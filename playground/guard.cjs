'use strict';
/*
 * Loopback-only network guard for Node processes (HMS-hjulet).
 *
 * Load it as a preload:  node --require playground/guard.cjs <script> ...
 *
 * What it does (process-wide, before any user code runs):
 *   1. net.Server.prototype.listen: a TCP listen() without an explicit host
 *      (or with a wildcard host such as 0.0.0.0 / ::) binds to 127.0.0.1.
 *      Unix-socket paths, handles and fds are left alone.
 *   2. net.Socket.prototype.connect (and therefore net/http/https/tls/http2/
 *      fetch): a connect to anything other than 127.0.0.0/8, ::1,
 *      ::ffff:127.x, "localhost" (or *.localhost) or a unix socket is refused
 *      BEFORE the original connect runs, so no packet ever leaves.  One line
 *      "[guard] refused connect to HOST:PORT" goes to stderr and the socket
 *      is destroyed asynchronously with an ECONNREFUSED error (only emitted as
 *      'error' if someone listens for it, so the process never crashes).
 *   3. dns.lookup / dns.promises.lookup fail (ENOTFOUND) for names other than
 *      localhost names and IP literals; the c-ares resolver functions
 *      (dns.resolve*, dns.reverse, Resolver instances) always fail, since they
 *      would send UDP to a resolver.
 *   4. dgram sends/connects to non-loopback addresses are refused.
 *   5. process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = '1', and the guard is
 *      appended to NODE_OPTIONS so that child Node processes get it too.
 *
 * Set HMS_GUARD_QUIET=1 to suppress the stderr lines (not recommended).
 */

const net = require('net');
const dns = require('dns');
const dgram = require('dgram');
const path = require('path');

const GUARD_MARK = Symbol.for('hms.loopbackGuard');
if (globalThis[GUARD_MARK]) {
  module.exports = globalThis[GUARD_MARK];
  return;
}

process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = '1';

// Make child Node processes load the guard as well (defense in depth).
try {
  const self = path.resolve(__filename);
  const req = `--require ${JSON.stringify(self)}`;
  const cur = process.env.NODE_OPTIONS || '';
  if (!cur.includes(self)) {
    process.env.NODE_OPTIONS = (cur ? cur + ' ' : '') + req;
  }
} catch (_) {
  /* ignore */
}

const quiet = process.env.HMS_GUARD_QUIET === '1';
function log(line) {
  if (quiet) return;
  try {
    process.stderr.write(`[guard] ${line}\n`);
  } catch (_) {
    /* ignore */
  }
}

function stripBrackets(host) {
  if (typeof host !== 'string') return host;
  if (host.startsWith('[') && host.endsWith(']')) return host.slice(1, -1);
  return host;
}

function isLoopbackIp(host) {
  const h = stripBrackets(host).toLowerCase();
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const m = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h) || /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    if (m) return m[1].startsWith('127.');
    return false;
  }
  return false;
}

function isLocalName(host) {
  if (typeof host !== 'string') return false;
  const h = host.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost');
}

function isAllowedHost(host) {
  if (host === undefined || host === null || host === '') return true; // net default is localhost
  return isLoopbackIp(host) || isLocalName(host);
}

function isWildcardHost(host) {
  if (typeof host !== 'string') return false;
  const h = stripBrackets(host).toLowerCase();
  return h === '' || h === '0.0.0.0' || h === '::' || h === '0:0:0:0:0:0:0:0' || h === '::0';
}

function refusedError(host, port, syscall) {
  const err = new Error(`[guard] refused ${syscall || 'connect'} to ${host}:${port} (loopback only)`);
  err.code = 'ECONNREFUSED';
  err.errno = -111;
  err.syscall = syscall || 'connect';
  err.address = host;
  if (port !== undefined) err.port = port;
  err.hmsGuard = true;
  return err;
}

// ---------------------------------------------------------------------------
// 1. listen() defaults to 127.0.0.1
// ---------------------------------------------------------------------------
const LOOPBACK = '127.0.0.1';
const origListen = net.Server.prototype.listen;

function isPortLike(v) {
  if (typeof v === 'number') return true;
  if (typeof v === 'string' && v.trim() !== '' && /^\d+$/.test(v.trim())) return true;
  return false;
}

net.Server.prototype.listen = function guardedListen(...args) {
  const a0 = args[0];
  if (a0 !== null && typeof a0 === 'object' && !Array.isArray(a0)) {
    // listen(options[, cb]) or listen(handle[, backlog][, cb])
    const isOptions = !('_handle' in a0) && a0.fd === undefined && a0.handle === undefined && a0.path === undefined;
    if (isOptions && ('port' in a0 || !('path' in a0))) {
      if (a0.host === undefined || a0.host === null || isWildcardHost(a0.host)) {
        if (a0.host !== undefined && a0.host !== null) log(`listen host ${a0.host} rewritten to ${LOOPBACK}`);
        args[0] = Object.assign({}, a0, { host: LOOPBACK });
        if (args[0].ipv6Only !== undefined) delete args[0].ipv6Only;
      }
    }
  } else if (typeof a0 === 'string' && !isPortLike(a0)) {
    // listen(path, ...) unix socket / named pipe: leave alone
  } else if (a0 === undefined || a0 === null || typeof a0 === 'function' || isPortLike(a0)) {
    if (a0 === undefined || a0 === null || typeof a0 === 'function') {
      // listen() / listen(cb): random port
      const rest = a0 === undefined || a0 === null ? args.slice(1) : args;
      args = [0, LOOPBACK, ...rest];
    } else if (typeof args[1] === 'string') {
      if (isWildcardHost(args[1])) {
        log(`listen host ${args[1]} rewritten to ${LOOPBACK}`);
        args[1] = LOOPBACK;
      }
    } else {
      // listen(port), listen(port, cb), listen(port, backlog[, cb]), listen(port, undefined, ...)
      if (args.length >= 2 && (args[1] === undefined || args[1] === null)) {
        args[1] = LOOPBACK;
      } else {
        args.splice(1, 0, LOOPBACK);
      }
    }
  }
  return origListen.apply(this, args);
};

// ---------------------------------------------------------------------------
// 2. connect() only to loopback / unix sockets
// ---------------------------------------------------------------------------
const origConnect = net.Socket.prototype.connect;

function describeTarget(args) {
  // Returns {unix:true} or {host, port}
  let a0 = args[0];
  if (Array.isArray(a0)) a0 = a0[0]; // already-normalized internal form [options, cb]
  if (a0 !== null && typeof a0 === 'object') {
    if (a0.path !== undefined && a0.path !== null) return { unix: true };
    return { host: a0.host === undefined || a0.host === null ? 'localhost' : String(a0.host), port: a0.port };
  }
  if (typeof a0 === 'string' && !isPortLike(a0)) return { unix: true };
  const host = typeof args[1] === 'string' ? args[1] : 'localhost';
  return { host, port: a0 };
}

net.Socket.prototype.connect = function guardedConnect(...args) {
  let target;
  try {
    target = describeTarget(args);
  } catch (_) {
    target = { host: '?', port: '?' };
  }
  if (target.unix || isAllowedHost(target.host)) {
    return origConnect.apply(this, args);
  }
  const host = stripBrackets(target.host);
  log(`refused connect to ${host}:${target.port}`);
  const err = refusedError(host, target.port, 'connect');
  const sock = this;
  // Mimic a socket whose connection attempt failed: asynchronous error + close.
  try {
    sock.connecting = true;
  } catch (_) {
    /* ignore */
  }
  // setImmediate (not nextTick) so that http/tls get the chance to attach
  // their 'error' listeners first (http attaches them in a nextTick).
  setImmediate(() => {
    try {
      sock.connecting = false;
    } catch (_) {
      /* ignore */
    }
    if (sock.destroyed) return;
    if (sock.listenerCount('error') > 0) sock.destroy(err);
    else sock.destroy();
  });
  return sock;
};

// ---------------------------------------------------------------------------
// 3. DNS
// ---------------------------------------------------------------------------
function dnsRefusedError(hostname, syscall) {
  const err = new Error(`[guard] refused ${syscall} ${hostname} (loopback only)`);
  err.code = 'ENOTFOUND';
  err.errno = -3008;
  err.syscall = syscall;
  err.hostname = hostname;
  err.hmsGuard = true;
  return err;
}

function lookupAllowed(hostname) {
  if (typeof hostname !== 'string' || hostname === '') return true;
  return isLocalName(hostname) || net.isIP(stripBrackets(hostname)) !== 0;
}

const origLookup = dns.lookup;
dns.lookup = function guardedLookup(hostname, options, callback) {
  if (lookupAllowed(hostname)) return origLookup.apply(this, arguments);
  const cb = typeof options === 'function' ? options : callback;
  log(`refused dns lookup of ${hostname}`);
  const err = dnsRefusedError(hostname, 'getaddrinfo');
  if (typeof cb === 'function') process.nextTick(cb, err);
  return {};
};

if (dns.promises && typeof dns.promises.lookup === 'function') {
  const origPLookup = dns.promises.lookup;
  dns.promises.lookup = function guardedPromisesLookup(hostname, ...rest) {
    if (lookupAllowed(hostname)) return origPLookup.call(this, hostname, ...rest);
    log(`refused dns lookup of ${hostname}`);
    return Promise.reject(dnsRefusedError(hostname, 'getaddrinfo'));
  };
}

const RESOLVE_FNS = [
  'resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCaa', 'resolveCname', 'resolveMx',
  'resolveNaptr', 'resolveNs', 'resolvePtr', 'resolveSoa', 'resolveSrv', 'resolveTxt', 'reverse',
];

function patchResolverCb(obj) {
  if (!obj) return;
  for (const name of RESOLVE_FNS) {
    if (typeof obj[name] !== 'function') continue;
    obj[name] = function guardedResolve(hostname, ...rest) {
      const cb = rest.length ? rest[rest.length - 1] : undefined;
      log(`refused dns ${name} of ${hostname}`);
      const err = dnsRefusedError(hostname, name);
      if (typeof cb === 'function') process.nextTick(cb, err);
      return {};
    };
  }
}

function patchResolverPromise(obj) {
  if (!obj) return;
  for (const name of RESOLVE_FNS) {
    if (typeof obj[name] !== 'function') continue;
    obj[name] = function guardedResolveP(hostname) {
      log(`refused dns ${name} of ${hostname}`);
      return Promise.reject(dnsRefusedError(hostname, name));
    };
  }
}

patchResolverCb(dns);
patchResolverCb(dns.Resolver && dns.Resolver.prototype);
if (dns.promises) {
  patchResolverPromise(dns.promises);
  patchResolverPromise(dns.promises.Resolver && dns.promises.Resolver.prototype);
}

// ---------------------------------------------------------------------------
// 4. UDP
// ---------------------------------------------------------------------------
const origDgramSend = dgram.Socket.prototype.send;
dgram.Socket.prototype.send = function guardedSend(...args) {
  // send(msg[, offset, length][, port][, address][, cb])
  let address;
  let port;
  for (let i = 1; i < args.length; i++) {
    if (typeof args[i] === 'number' && port === undefined && typeof args[i + 1] !== 'number') port = args[i];
    if (typeof args[i] === 'string') {
      address = args[i];
      break;
    }
  }
  if (address === undefined || isAllowedHost(address)) return origDgramSend.apply(this, args);
  log(`refused connect to ${stripBrackets(address)}:${port}`);
  const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
  const err = refusedError(address, port, 'send');
  if (cb) process.nextTick(cb, err);
  else if (this.listenerCount('error') > 0) process.nextTick(() => this.emit('error', err));
  return undefined;
};

if (typeof dgram.Socket.prototype.connect === 'function') {
  const origDgramConnect = dgram.Socket.prototype.connect;
  dgram.Socket.prototype.connect = function guardedDgramConnect(port, address, cb) {
    const host = typeof address === 'string' ? address : 'localhost';
    if (isAllowedHost(host)) return origDgramConnect.apply(this, arguments);
    log(`refused connect to ${stripBrackets(host)}:${port}`);
    const err = refusedError(host, port, 'connect');
    const callback = typeof address === 'function' ? address : cb;
    process.nextTick(() => {
      if (typeof callback === 'function') callback(err);
      else if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    return undefined;
  };
}

const api = { installed: true, isAllowedHost, isLoopbackIp };
globalThis[GUARD_MARK] = api;
module.exports = api;
