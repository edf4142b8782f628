// ESM entry: the same objects as the CommonJS entry, as named exports.
import cjs from "./index.js";

export const { createAdapter, setupPrimary, createEmitter, NodeClusterAdapter } = cjs;
export default cjs;
