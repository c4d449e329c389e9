export declare const DEFAULT_PORTS: ReadonlySet<number>
