/**
 * Installing weft on a node through the DaemonSet's hostPath mounts: the executable into the
 * CNI bin directory and the conflist into the CNI config directory. Atomic renames so a kubelet
 * never runs a half-copied binary or reads a half-written config; idempotent so every pod
 * restart can re-run it; uninstall removes exactly the two names install owns.
 */
export {
  BINARY_NAME,
  buildConflist,
  CONFLIST_NAME,
  type ConflistOptions,
  DEFAULT_CNI_BIN_DIR,
  DEFAULT_CNI_CONF_DIR,
  install,
  InstallError,
  type InstallOptions,
  type InstallResult,
  TEMP_PREFIX,
  uninstall,
  type UninstallOptions,
  type UninstallResult,
} from "./install.ts";
