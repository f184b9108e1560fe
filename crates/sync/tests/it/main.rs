mod e2e;
