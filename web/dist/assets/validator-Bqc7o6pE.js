import{$ as i}from"./admin-BSc1H_F1.js";const n=o=>["",...i].includes(o);export{n as i};
