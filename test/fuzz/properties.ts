// Every fuzz property, in the order the suite and `npm run fuzz` run them.
import { appProperties } from './app-properties';
import type { FuzzProperty } from './property';
import { relayProperties } from './relay-properties';
import { tunnelProperties } from './tunnel-properties';

export const properties: readonly FuzzProperty[] = [...appProperties, ...tunnelProperties, ...relayProperties];
