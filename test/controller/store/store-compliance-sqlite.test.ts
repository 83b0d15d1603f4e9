import { sqliteStoreFactory } from '../../helpers/store-factories.ts';
import { storeCompliance } from './store-compliance.ts';

// The store compliance suite on the embedded default: a SQLite file, reopened from the same path.
storeCompliance('sqlite', sqliteStoreFactory);
