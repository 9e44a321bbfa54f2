// Preloaded into the Portkey gateway's Node process by bench/portkey.py (`node --import`):
// every TCP listen goes to 127.0.0.1, so the bench's peer never listens beyond loopback
// (the gateway's server takes no host option).
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number") {
    const done = typeof args[args.length - 1] === "function" ? [args[args.length - 1]] : [];
    return listen.call(this, args[0], "127.0.0.1", ...done);
  }
  if (args[0] && typeof args[0] === "object" && "port" in args[0]) {
    return listen.call(this, { ...args[0], host: "127.0.0.1" }, ...args.slice(1));
  }
  return listen.apply(this, args);
};
