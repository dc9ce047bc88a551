import{b2 as i}from"./admin-BgQdEhSJ.js";const n=o=>["",...i].includes(o);export{n as i};
