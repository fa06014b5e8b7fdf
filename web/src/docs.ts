/**
 * The API documentation page at /docs: Swagger UI (served by the service
 * from swagger-ui-dist, no CDN) rendering the service's OpenAPI document.
 * A script of its own because the page's Content-Security-Policy allows no
 * inline script.
 */

interface SwaggerUiOptions {
  url: string;
  dom_id: string;
  deepLinking?: boolean;
  /** null: no badge from the public validator (an outside request the policy would block). */
  validatorUrl?: string | null;
  tryItOutEnabled?: boolean;
}

declare const SwaggerUIBundle: (options: SwaggerUiOptions) => unknown;

SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null });
