/// <reference lib="deno.worker" />
/** Entry module of a sleeve worker thread (see sleeve_thread.ts). */
import { installSleeveWorker } from "./sleeve_thread.ts";

installSleeveWorker();
