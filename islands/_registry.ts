/**
 * Every island, by name, as a lazy import: the boot script loads only the islands a page has,
 * and `deno bundle` makes each one its own chunk. A test checks that every `islands/*.tsx` is
 * listed here under its file name.
 */
import type { ComponentType } from "preact";

// deno-lint-ignore no-explicit-any
type IslandModule = { default: ComponentType<any> };

/** Island loaders by name (the file name without `.tsx`). */
export const ISLANDS: Record<string, () => Promise<IslandModule>> = {
  AccountsManager: () => import("./AccountsManager.tsx"),
  ChannelsManager: () => import("./ChannelsManager.tsx"),
  Chart: () => import("./Chart.tsx"),
  KeysManager: () => import("./KeysManager.tsx"),
  KillSwitch: () => import("./KillSwitch.tsx"),
  LiveAccounts: () => import("./LiveAccounts.tsx"),
  LivePositions: () => import("./LivePositions.tsx"),
  LiveSignals: () => import("./LiveSignals.tsx"),
  LoginForm: () => import("./LoginForm.tsx"),
  LogoutButton: () => import("./LogoutButton.tsx"),
  NewSignals: () => import("./NewSignals.tsx"),
  PageRefresh: () => import("./PageRefresh.tsx"),
  SecurityPanel: () => import("./SecurityPanel.tsx"),
  SetupForm: () => import("./SetupForm.tsx"),
  SystemHealth: () => import("./SystemHealth.tsx"),
  WatchlistsManager: () => import("./WatchlistsManager.tsx"),
};
