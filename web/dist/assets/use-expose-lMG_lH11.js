import{e as n}from"./member-TckbxxML.js";import{u as o}from"./format-Dd9NP9-Y.js";function a(t){const e=o();e&&n(e.proxy,t)}export{a as u};
