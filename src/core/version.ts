/** meshfed's version (kept equal to package.json's; a test checks it). */
export const MESHFED_VERSION = '0.1.0';
