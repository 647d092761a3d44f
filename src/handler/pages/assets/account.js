// The account page (pages.js runs first).
"use strict";
