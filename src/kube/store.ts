/**
 * The informer's cache: objects by key (`namespace/name`, or `name` for cluster-scoped kinds)
 * plus secondary indexes kept up to date on every write, so "the pods labelled app=web" or "the
 * pod with address 10.32.0.7" is a map lookup rather than a scan of the cluster. An index is a
 * function from an object to the values it is filed under (none, one or many). Most values
 * file one object (an address, a pod's own name label), so such a bucket is the object itself
 * and becomes a map only at its second object: a one-entry Map costs more than the pod.
 */

/** What every cached object carries: enough to key it and to tell incarnations apart. */
export interface KubeObjectRef {
  namespace?: string;
  name: string;
  uid: string;
}

export type IndexFunction<T> = (object: T) => Iterable<string>;

/** The read side, handed to everyone but the informer that fills it. */
export interface ReadonlyStore<T, I extends string = never> {
  readonly size: number;
  /** By `namespace/name` (namespaced kinds) or `name` (cluster-scoped kinds). */
  get(key: string): T | undefined;
  list(): T[];
  /** The objects filed under `value` in `index`, in no particular order. */
  byIndex(index: I, value: string): T[];
}

export function objectKey(ref: { namespace?: string; name: string }): string {
  return ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name;
}

/** The value a label index files an object under; keys cannot contain "=". */
export function labelPair(key: string, value: string): string {
  return `${key}=${value}`;
}

export class Store<T extends KubeObjectRef, I extends string = never>
  implements ReadonlyStore<T, I> {
  readonly #objects = new Map<string, T>();
  readonly #indexFunctions: [I, IndexFunction<T>][];
  readonly #indexes = new Map<I, Map<string, T | Map<string, T>>>();

  constructor(indexes: Record<I, IndexFunction<T>>) {
    this.#indexFunctions = Object.entries(indexes) as [I, IndexFunction<T>][];
    for (const [name] of this.#indexFunctions) this.#indexes.set(name, new Map());
  }

  get size(): number {
    return this.#objects.size;
  }

  get(key: string): T | undefined {
    return this.#objects.get(key);
  }

  list(): T[] {
    return [...this.#objects.values()];
  }

  byIndex(index: I, value: string): T[] {
    const filed = this.#indexes.get(index);
    if (!filed) throw new RangeError(`Store has no index "${index}"`);
    const bucket = filed.get(value);
    if (bucket === undefined) return [];
    return bucket instanceof Map ? [...bucket.values()] : [bucket];
  }

  /** Stores `object` under its key and returns what was there before. */
  set(object: T): T | undefined {
    const key = objectKey(object);
    const previous = this.#objects.get(key);
    if (previous) this.#unindex(key, previous);
    this.#objects.set(key, object);
    for (const [name, values] of this.#indexFunctions) {
      const filed = this.#indexes.get(name)!;
      for (const value of values(object)) {
        const bucket = filed.get(value);
        if (bucket === undefined) filed.set(value, object);
        else if (bucket === object) continue; // the same value listed twice
        else if (bucket instanceof Map) bucket.set(key, object);
        else filed.set(value, new Map([[objectKey(bucket), bucket], [key, object]]));
      }
    }
    return previous;
  }

  delete(key: string): T | undefined {
    const previous = this.#objects.get(key);
    if (!previous) return undefined;
    this.#unindex(key, previous);
    this.#objects.delete(key);
    return previous;
  }

  #unindex(key: string, object: T): void {
    for (const [name, values] of this.#indexFunctions) {
      const filed = this.#indexes.get(name)!;
      for (const value of values(object)) {
        const bucket = filed.get(value);
        if (bucket === object) filed.delete(value);
        else if (bucket instanceof Map) {
          bucket.delete(key);
          if (bucket.size === 1) filed.set(value, bucket.values().next().value!);
          else if (bucket.size === 0) filed.delete(value);
        }
      }
    }
  }
}
